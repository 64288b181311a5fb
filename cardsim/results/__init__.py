"""Files and tables that runs leave behind for people and for pandas."""
