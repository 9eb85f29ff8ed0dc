"""Randomized fault scenarios: kvip never loses or duplicates an address."""
