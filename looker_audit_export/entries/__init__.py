"""Log entries from Looker rows: ``encode`` (Struct bytes and caches), ``head`` (what every entry shares),
``repair`` (shrink and placeholder), ``events`` and ``history`` (one mapper per stream). Pure, no I/O."""
