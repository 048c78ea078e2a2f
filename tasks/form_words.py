"""What the task form calls its fields, and the help under them, written for the analyst who fills it in
(Django's defaults from the field names read "Csv delimiter", "Gpg key", "Smtp connection"). Kept in the form,
not in the models' verbose_name, so no migration follows a change of wording."""
from runs.parameters import NAMED_DATES

LABELS = {
    "project": "Project",
    "name": "Task name",
    "run_rank": "Order in a series project",
    "drift_check": "When the output's columns or row count drift",
    "enabled": "Enabled (runs on the project's schedule)",
    "source_kind": "Where the data comes from",
    "source_connection": "Connection",
    "text_location": "The query, script or command is",
    "text_connection": "Connection holding the file",
    "text_path": "File path",
    "text_entry": "Script to run inside the folder",
    "cache_remote_text": "Use the last copy when the file cannot be fetched",
    "query": "SQL query",
    "include_headers": "Column names on the first line",
    "command": "Shell command",
    "file_folder": "Folder",
    "file_pattern": "File name or pattern",
    "on_no_files": "When no file matches",
    "file_handling": "What to do with the files",
    "delete_source_files": "Delete the files from the server after delivery",
    "processing_location": "Processing script",
    "processing_script": "Script",
    "processing_connection": "Connection holding the script",
    "processing_path": "Script path",
    "processing_entry": "Script to run inside the folder",
    "file_name": "File name",
    "file_format": "File format",
    "csv_delimiter": "Column separator",
    "csv_quoting": "Quote values",
    "line_terminator": "Line ending",
    "encoding": "Character encoding",
    "append_to_lines": "Text added at the end of every line",
    "gpg_key": "Encrypt for (GPG key)",
    "zip_output": "Put the files in a zip archive",
    "zip_name": "Zip archive name",
    "write_md5_file": "Deliver an .md5 checksum file beside each file",
    "retention_days": "Keep output files for (days)",
    "test_mode": "Test mode: send every email to a test address",
    "test_email": "Test address",
    "priority": "Priority (1 first, 100 last)",
    "max_instances": "Runs at the same time, at most",
    "timeout_seconds": "Stop a run after (seconds)",
    "dependency_mode": "Run after other tasks",
    "retries": "Automatic retries",
    "retry_delay_seconds": "Wait before a retry (seconds)",
    "retry_backoff": "Double the wait after every retry",
    "retry_max_delay_seconds": "Longest wait between retries (seconds)",
    "publish_to_users": "Show the files in the file hub to these people",
    "publish_to_groups": "… and these groups",
    "destination_connection": "Deliver to (connection)",
    "destination_folder": "Folder on it",
    "error_recipients": "On failure, email",
    "error_smtp_connection": "… through (mail connection)",
    "warning_recipients": "On warning, email",
    "warning_smtp_connection": "… through (mail connection)",
    "success_recipients": "On success, email",
    "success_smtp_connection": "… through (mail connection)",
}

HELP = {
    "name": "Shown in lists and emails; {task} in a name or text stands for it.",
    "source_connection": "Only connections that can serve the chosen kind of source are listed.",
    "query": "Values are bound as query parameters, never pasted into the SQL.",
    "timeout_seconds": "",
    "retention_days": "0 keeps them for ever.",
    "gpg_key": "Each file is encrypted to this key and gets .gpg added to its name.",
}

# Fields whose text takes {parameters}: the names available are listed under each of them.
PARAMETER_FIELDS = ("query", "command", "file_pattern", "file_folder", "text_path", "file_name", "zip_name",
                    "destination_folder")
FORMSET_PARAMETER_FIELDS = {"destinations": ("folder", "marker_name"), "notifications": ("subject", "message"),
                            "conditions": ("query",)}
BUILT_INS = NAMED_DATES + ("now", "run_id", "task", "project")

FORMSET_LABELS = {
    "destinations": {"connection": "Deliver to", "folder": "Folder", "overwrite": "Replace a file of the same name",
                     "skip_empty": "Skip empty files", "marker": "Marker file when all files have landed",
                     "marker_name": "Marker file name", "ack_pattern": "Acknowledgement file",
                     "nack_pattern": "Refusal file", "ack_wait_minutes": "Wait for the answer (minutes)",
                     "ack_failure": "A refusal or no answer makes the run a", "position": "Order"},
    "notifications": {"event": "When", "smtp_connection": "Send through (mail connection)",
                      "recipients": "To", "cc": "Cc", "bcc": "Bcc", "include_output": "Attach the files",
                      "max_attachment_bytes": "Largest attachment (bytes)",
                      "attach_manifest": "Attach the delivery manifest (JSON)"},
    "conditions": {"kind": "Condition", "connection": "Database", "operator": "Is", "value": "Than"},
    "dependencies": {"upstream": "Run after task", "on": "When it"},
    "parameters": {"key": "Name", "sensitive": "Secret (masked everywhere)"},
}


def parameter_help(project_keys):
    """The line under a field that takes parameters: the built-in names, then the project's own."""
    names = " ".join("{%s}" % name for name in BUILT_INS)
    own = " ".join("{%s}" % key for key in project_keys)
    return (f"Parameters: {names}" + (f" · this project's: {own}" if own else "")
            + " · and the task's own (Source tab); dates take a format: {yesterday:%Y%m%d}.")
