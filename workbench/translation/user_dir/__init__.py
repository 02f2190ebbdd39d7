"""The parent folder of fairseq's `--user-dir` plugin, and nothing else.

fairseq puts a user dir's parent first on `sys.path`; this folder holds only the plugin package
`workbench_activations`, so no other module of ours can shadow a top-level name inside fairseq
processes (a `train` or `config` module beside the plugin once did).
"""
