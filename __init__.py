"""The installed package `nlu_collapse` is this folder (pyproject.toml maps it): code imports
`nlu_collapse.config`, `nlu_collapse.model`, ..., so installing the repo adds one distinctive name to
an environment, never generic ones such as `config`, `data` or `model`. Importing it imports nothing."""
