# .gcloudignore is the one list of what is not deployed. This file turns its
# lines into archive_file globs (hashicorp/archive >= 2.5 matches `excludes`
# against paths relative to source_dir with doublestar; a matching directory
# is skipped whole). tests/test_bundle.py applies the same rules in Python.
#
#   "name" or "name/"  -> "**/name", "**/name/**"  (any depth, like .gitignore)
#   "/name" or "a/b"   -> "name", "name/**"        (relative to the project root)
#
# This file only holds locals, so the tests can evaluate it with
# `terraform console` without downloading any provider.

locals {
  # The project root: this module is terraform/modules/looker_audit_export/ of
  # the repository (also when Terraform fetched it from git with a //subdir).
  repo_root = "${path.module}/../../.."

  gcloudignore_patterns = [
    for line in split("\n", file("${local.repo_root}/.gcloudignore")) : trimspace(line)
    if trimspace(line) != "" && !startswith(trimspace(line), "#")
  ]

  # Drop the trailing "/" of directory patterns: a glob cannot tell a
  # directory from a file, and a directory's content is excluded below.
  gcloudignore_paths = [for p in local.gcloudignore_patterns : trimsuffix(p, "/")]

  # A "/" at the start or in the middle anchors the pattern to the root.
  gcloudignore_globs = [
    for p in local.gcloudignore_paths :
    strcontains(p, "/") ? trimprefix(p, "/") : "**/${p}"
  ]

  source_excludes = distinct(flatten([for g in local.gcloudignore_globs : [g, "${g}/**"]]))
}
