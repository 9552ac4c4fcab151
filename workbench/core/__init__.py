"""Foundation shared by every stage: settings, errors, ids, clock, logging."""
