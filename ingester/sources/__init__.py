"""Where log objects come from: S3 listing and fetch; key arithmetic in keys.py."""
