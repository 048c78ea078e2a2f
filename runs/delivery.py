"""Delivery stage: put every output file on every destination of the task."""
from runs import pipeline


def deliver_all(ctx, outputs):
    destinations = list(ctx.task.destinations.select_related("connection"))
    if not destinations:
        ctx.log("No destinations: the files are kept in the run history only")
    for destination in destinations:
        store = destination.connection.connector()
        if store.category != "files":
            raise pipeline.PipelineError(f"{destination.connection.name} cannot receive files", step="settings")
        for output in outputs:
            delivered = pipeline.deliver(output.path, output.name,
                                         [(store, destination.folder, destination.overwrite)])
            ctx.log(f"Delivered {output.name} to {destination.connection.name}:{delivered[0]['path']}")
            output.deliveries.extend(delivered)
    return outputs
