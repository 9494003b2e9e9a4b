"""What every consumer of the log shares (the engine runner and the view builders)."""
