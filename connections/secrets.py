"""Secrets at rest: Fernet with key rotation, and a model field that never shows its value."""
import json
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute

from etl_portal.masking import Masker

MASK = "********"


@lru_cache(maxsize=4)
def _fernet(keys):
    return MultiFernet([Fernet(key.encode()) for key in keys])


def fernet():
    return _fernet(tuple(settings.ETL_FERNET_KEYS))


def encrypt(text):
    return fernet().encrypt(text.encode()).decode()


def decrypt(token):
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("A stored secret cannot be decrypted with the configured ETL_FERNET_KEYS") from exc


def rotate(token):
    return fernet().rotate(token.encode()).decode()


class SecretDict(dict):
    """Decrypted secrets in memory; its repr never shows a value, so tracebacks and logs stay clean."""

    def __repr__(self):
        return "SecretDict(%s)" % ", ".join(f"{key}={MASK}" for key in self if self[key])

    __str__ = __repr__


class SecretDictAttribute(DeferredAttribute):
    """Wraps whatever is assigned in a SecretDict, so even an unsaved instance never shows its secrets."""

    def __set__(self, instance, value):
        instance.__dict__[self.field.attname] = SecretDict(value) if isinstance(value, dict) else value


class EncryptedJSONField(models.TextField):
    """A dict of secrets stored as one Fernet token; blank in the database when empty."""

    descriptor_class = SecretDictAttribute

    def from_db_value(self, value, expression, connection):
        if not value:
            return SecretDict()
        return SecretDict(json.loads(decrypt(value)))

    def to_python(self, value):
        if isinstance(value, SecretDict):
            return value
        if isinstance(value, dict):
            return SecretDict(value)
        if not value:
            return SecretDict()
        return SecretDict(json.loads(decrypt(value)))

    def get_prep_value(self, value):
        value = {key: val for key, val in (value or {}).items() if val}
        if not value:
            return ""
        return encrypt(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj):
        # Serialisation (dumpdata) keeps the ciphertext, never the plain secrets.
        return self.get_prep_value(self.value_from_object(obj))


def scrub(text, secret_values):
    """Remove every known secret from a message before it is logged or shown (see etl_portal/masking.py: whole
    values, and each line of a value that spans lines)."""
    return Masker(secret_values)(text)


class EncryptedTextField(models.TextField):
    """One string stored as a Fernet token (used for parameter values)."""

    # Serialised values carry this prefix so loaddata can tell ciphertext from a plain value.
    SERIAL_PREFIX = "fernet:"

    def from_db_value(self, value, expression, connection):
        return decrypt(value) if value else ""

    def to_python(self, value):
        if isinstance(value, str) and value.startswith(self.SERIAL_PREFIX):
            return decrypt(value[len(self.SERIAL_PREFIX):])
        return value or ""

    def get_prep_value(self, value):
        return encrypt(str(value)) if value else ""

    def value_to_string(self, obj):
        # Serialisation (dumpdata) keeps the ciphertext, never the plain value.
        value = self.value_from_object(obj)
        return self.SERIAL_PREFIX + self.get_prep_value(value) if value else ""
