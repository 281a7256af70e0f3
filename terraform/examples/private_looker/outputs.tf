output "egress_ip" {
  description = "The address the functions' traffic leaves from: add it to the IP allowlist of any Looker that has one (docs/networking.md)."
  value       = module.looker_audit_export.egress_ip
}

output "secret_add_version_commands" {
  description = "Run each once after the first apply, with the Looker API client ID and secret."
  value       = module.looker_audit_export.secret_add_version_commands
}

output "function_names" {
  description = "Name of each instance's function."
  value       = module.looker_audit_export.function_names
}
