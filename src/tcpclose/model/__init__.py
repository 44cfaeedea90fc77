"""The one data model: packets, application events and the timeline that merges them."""
