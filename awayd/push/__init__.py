"""Push mode: Dovecot push_notification events wake a folder at once; a slow sweep catches up."""
