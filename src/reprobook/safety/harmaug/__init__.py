"""HarmAug (ch11): distilling a safety guard with augmented data, in a token world."""
