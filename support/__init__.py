"""Machinery the tests and the lab share: the service's processes, private Redis and MariaDB servers, rushes."""
