"""Feedback loops: sales, support, customers and product hear about work items, until resolved."""
