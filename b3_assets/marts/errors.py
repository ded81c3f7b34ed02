"""What can go wrong with a mart, each error saying what to do."""





class MartError(ValueError):
    """A mart cannot be computed or stored as asked; the message says what to do."""


class CorruptYearFile(MartError):
    """A year file that cannot be read as its table: torn by a crash or a disk, foreign, or
    edited by hand. A run of the marts rebuilds a mart's file from landing (build_marts)."""

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class PlanChanged(MartError):
    """Landing changed between a run's plan and one of its writes: the run plans again."""
