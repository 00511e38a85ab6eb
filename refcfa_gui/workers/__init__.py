"""Qt workers: generator jobs on a pool, latest-request-wins loaders, thumbnails."""
