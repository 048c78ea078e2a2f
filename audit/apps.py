from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Change history"

    def ready(self):
        from simple_history.signals import pre_create_historical_record

        from audit.actors import label_system_change

        pre_create_historical_record.connect(label_system_change, dispatch_uid="audit-label-system-change")
