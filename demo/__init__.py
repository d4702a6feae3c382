"""Demo data for a new installation (`flask demo seed`). The one place that may use every
part of the product, so it sits above all of them."""

from demo.cli import demo_cli

__all__ = ["demo_cli"]
