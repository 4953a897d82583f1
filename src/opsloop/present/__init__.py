"""Words and markup: what people read, made from what the features did.

The features publish events and return data; the presenters here are handlers
in the table (`opsloop/table.py`) that turn them into messages for the outbox
and lines for the timeline, in the same transaction. `blockkit` and `text`
turn a `Message` into Slack Block Kit and into the console's text.
"""
