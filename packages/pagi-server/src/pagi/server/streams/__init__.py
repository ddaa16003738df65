"""One class per scope type, shared by every protocol driver."""
