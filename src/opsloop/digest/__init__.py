"""The leadership digest: a day of operations against the targets, with the week for comparison."""
