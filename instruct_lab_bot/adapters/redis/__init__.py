"""The Redis adapter: the only code that names a Redis key or runs Lua.

`keys` (every key, stream and group name), `lua/` (the scripts, loaded by `scripts`), the
`Queue` that services hold (`queue`, made of `streams`, `jobs`, `dead_letters`, `workers`,
`markers` and `stats`), the GitHub write budget (`write_budget`) and the reconciler's lock and
marks (`redelivery`).
"""
