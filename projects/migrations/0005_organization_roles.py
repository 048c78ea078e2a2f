"""Organization roles: members become `Membership` rows with a role and the "may write code" permission.

Django cannot add a `through` model to an existing many-to-many field, so the old link rows are copied into
`Membership` before the field is replaced. Existing members keep what they could do: a member who owns a
project of the organization becomes an editor, the others viewers; nobody gets the code permission, which an
organization admin grants.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def copy_members(apps, schema_editor):
    Organization = apps.get_model("projects", "Organization")
    Membership = apps.get_model("projects", "Membership")
    Project = apps.get_model("projects", "Project")
    owners = set(Project.objects.values_list("organization_id", "owner_id"))
    Membership.objects.bulk_create([
        Membership(organization_id=link.organization_id, user_id=link.user_id,
                   role="editor" if (link.organization_id, link.user_id) in owners else "viewer")
        for link in Organization.members.through.objects.all()
    ])


class Migration(migrations.Migration):

    dependencies = [
        ('projects', '0004_prune_script_environments_job'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='Membership',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('role', models.CharField(choices=[('viewer', 'Viewer'), ('editor', 'Editor'), ('admin', 'Admin')], default='viewer', help_text='Viewer: sees tasks, runs, logs and files. Editor: also creates, changes and runs projects and tasks. Admin: also manages connections and members.', max_length=10)),
                ('can_write_code', models.BooleanField(default=False, help_text="May write what runs on the portal's server: Python and processing scripts, SSH commands, SQLite and local-folder connections. Only with the editor or admin role.", verbose_name='may write code')),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('organization', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to='projects.organization')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='memberships', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['organization__name', 'user__username'],
            },
        ),
        migrations.AddConstraint(
            model_name='membership',
            constraint=models.UniqueConstraint(fields=('organization', 'user'), name='one_membership_per_user'),
        ),
        migrations.RunPython(copy_members, migrations.RunPython.noop),
        migrations.RemoveField(model_name='organization', name='members'),
        migrations.AddField(
            model_name='organization',
            name='members',
            field=models.ManyToManyField(blank=True, related_name='organizations', through='projects.Membership', to=settings.AUTH_USER_MODEL),
        ),
    ]
