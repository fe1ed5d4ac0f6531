"""Data quality: asset checks shared by every layer."""
