"""Packaging stage: what happens to the files between the source and delivery (append, GPG, zip, md5)."""
from runs import pipeline


def finish(ctx, outputs):
    """Return the files as they will be delivered, each with its size and md5."""
    for output in outputs:
        output.size, output.md5 = pipeline.checksum(output.path)
        ctx.log(f"{output.name}: {output.size:,} bytes, md5 {output.md5}")
    return outputs
