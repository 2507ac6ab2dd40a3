"""Converters from labelled raw datasets (BP4D, DISFA, GFT) to the prepared format, one module
each; :mod:`.common` holds their shared fold tables and label-file readers."""
