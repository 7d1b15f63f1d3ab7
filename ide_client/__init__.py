"""ide_client package."""
