"""Protocol drivers: bytes in, scopes and streams out, bytes back."""
