"""Pure IP address allocator for IPPool ranges: no I/O, no trio, no Kubernetes."""
