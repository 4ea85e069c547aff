"""The anomaly explorer (``anomstream ui``): alert list, alert and entity pages, feedback buttons."""
