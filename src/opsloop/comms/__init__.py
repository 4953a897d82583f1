"""Customer communication under human control: drafts in review, approved public updates, public items."""
