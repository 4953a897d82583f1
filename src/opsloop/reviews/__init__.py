"""Post-incident reviews drafted from the record, and the follow-ups (`ACT-n`) that come out of them."""
