"""awayd: an IMAP/SMTP auto-responder that answers people, never machines."""

__version__ = "0.1.0"
