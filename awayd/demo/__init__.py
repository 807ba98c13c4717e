"""`awayd demo`: embedded IMAP and SMTP servers, a sample config, the real daemon, live decisions."""
