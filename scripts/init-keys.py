#!/usr/bin/env python3
"""Create the portal's two generated keys in its data folder, once: `ETL_DATA_DIR/django-secret.key` (Django's
SECRET_KEY) and `ETL_DATA_DIR/fernet.key` (encrypts the stored secrets). An existing key is never replaced:
that would make every stored secret unreadable.

Settings only read these files (importing them writes nothing), so this runs before Django starts: `make
install` (and so `make run`, `make test`, `make bench`) calls it. A deployment that gives DJANGO_SECRET_KEY and
ETL_FERNET_KEYS in its environment needs neither file. Standard library only: it runs before the virtual
environment exists. ETL_DATA_DIR is read the same way as etl_portal/settings.py reads it (default ./data
beside manage.py).
"""
import base64
import os
import secrets
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
KEYS = {
    "django-secret.key": lambda: secrets.token_urlsafe(50),
    # A Fernet key is 32 random bytes, URL-safe base64 (cryptography's Fernet.generate_key() does the same).
    "fernet.key": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
}


def init_keys(data_dir):
    """Create the missing key files in `data_dir` (made if missing, mode 700); return the names created."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    for name, make in KEYS.items():
        path = data_dir / name
        try:
            # O_EXCL: two starts at once never overwrite each other's key; 0600 from the first byte.
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(handle, "w") as out:
            out.write(make() + "\n")
        created.append(name)
    return created


def main():
    data_dir = Path(os.environ.get("ETL_DATA_DIR") or BASE_DIR / "data").resolve()
    for name in init_keys(data_dir):
        print(f"Created {data_dir / name}", file=sys.stderr)


if __name__ == "__main__":
    main()
