"""Reference data the platform ships with (read at run time, never fetched): see README.md here for
each file's source and licence."""
