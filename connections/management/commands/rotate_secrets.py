from django.core.management.base import BaseCommand
from django.db import transaction

from connections.models import Connection
from projects import access
from projects.models import Parameter


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (connection secrets, parameter values) with the first key of "
            "ETL_FERNET_KEYS. Rotate keys by putting a new key first, running this, then removing the old key. With "
            "--user, that user must be a superuser.")

    def add_arguments(self, parser):
        access.add_command_user_argument(parser)

    @transaction.atomic
    def handle(self, **options):
        user = access.command_user(options.get("user"))
        access.command_require(user, access.SUPERUSER, doing="re-encrypt every secret")
        # Loading decrypts with any configured key; saving encrypts with the first one.
        connections = parameters = 0
        # Re-encrypting changes nothing a person sees, so it adds no history record; the history copies
        # themselves are re-encrypted too, or they could not be read once the old key is removed.
        for connection in Connection.objects.exclude(secrets=""):
            connection.save_without_historical_record(update_fields=["secrets"])
            connections += 1
        for parameter in Parameter.objects.exclude(value=""):
            parameter.save_without_historical_record(update_fields=["value"])
            parameters += 1
        for record in Connection.history.exclude(secrets=""):
            record.save(update_fields=["secrets"])
        for record in Parameter.history.exclude(value=""):
            record.save(update_fields=["value"])
        self.stdout.write(f"Re-encrypted the secrets of {connections} connections and {parameters} parameters.")
