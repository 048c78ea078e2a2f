"""Processing stage: the task's optional Python script that reshapes the source's files."""


def apply(ctx, outputs):
    return outputs
