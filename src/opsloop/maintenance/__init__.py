"""Maintenance windows (`MNT-n`): planned work that pages no one."""
