"""The command surface (one definition of every command) and its handlers; no Invoke here."""
