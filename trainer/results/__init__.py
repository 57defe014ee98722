"""A finished run read back: diagnosis of its history, the HTML report, listing and comparing."""
