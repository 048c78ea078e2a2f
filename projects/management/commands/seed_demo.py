import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from connections import local_paths
from connections.models import Connection
from projects.demo import CUSTOMERS_QUERY, ORDERS_QUERY, build_shop_database
from projects.models import Organization, Project
from tasks.models import Destination, Task


class Command(BaseCommand):
    help = ("Create the demo: an organization, an admin user, a SQLite shop database, a local delivery folder, "
            "and a project with tasks. Safe to run again: it updates what exists and creates what is missing.")

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin",
                            help="The demo superuser. Created with a random password printed once; "
                                 "an existing user's password is never changed.")

    @transaction.atomic
    def handle(self, username, **options):
        # Beside the data folder, not in it: connections may only use ETL_LOCAL_ROOTS, never the data folder.
        demo = settings.ETL_DEMO_DIR
        database_path = demo / "shop.sqlite3"
        if not database_path.exists():
            build_shop_database(database_path)
        outbox = demo / "outbox"
        outbox.mkdir(parents=True, exist_ok=True)
        if local_paths.refusal(local_paths.real(demo), folder=True):
            self.stderr.write(self.style.WARNING(
                f"The demo folder {demo} is not under ETL_LOCAL_ROOTS: its tasks will be refused until it is."))

        User = get_user_model()
        user, created = User.objects.get_or_create(username=username, defaults={"is_staff": True,
                                                                               "is_superuser": True})
        password = None
        if created:
            # A fixed demo password would be a known login on every install that forgot to change it.
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            user.save()
        org, _ = Organization.objects.get_or_create(name="Demo Company")
        org.set_member(user, "admin", can_write_code=True)
        shop, _ = Connection.objects.update_or_create(
            organization=org, name="Demo shop database",
            defaults={"kind": "sqlite", "path": str(database_path), "description": "SQLite demo data"})
        folder, _ = Connection.objects.update_or_create(
            organization=org, name="Demo outbox",
            defaults={"kind": "local", "path": str(outbox), "description": "A folder on this server"})
        project, _ = Project.objects.update_or_create(
            organization=org, name="Daily shop extracts", defaults={"owner": user, "mode": Project.Mode.SERIES})
        specs = [
            ("Orders export", 1, ORDERS_QUERY, "orders.csv", "orders"),
            ("Customers by city", 2, CUSTOMERS_QUERY, "customers_by_city.csv", "reports"),
        ]
        for name, rank, query, file_name, subfolder in specs:
            task, _ = Task.objects.update_or_create(
                project=project, name=name,
                defaults={"run_rank": rank, "source_connection": shop, "query": query, "file_name": file_name})
            Destination.objects.update_or_create(task=task, connection=folder, defaults={"folder": subfolder})
        if created:
            login = f"log in as {username!r} with password {password!r} (shown this once)"
        else:
            login = (f"user {username!r} already exists; its password is unchanged "
                     f"(`manage.py changepassword {username}` sets a new one)")
        self.stdout.write(self.style.SUCCESS(f"Demo ready: {login}; files are delivered to {outbox}"))
