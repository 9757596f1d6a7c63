"""``finepose weights``: the segmentation models' weights (photos without a reference mask need them)."""

from __future__ import annotations

from ls_backend.cli.output import print_json


def register(subparsers) -> None:
    p = subparsers.add_parser("weights", help="the segmentation weights: are they there, fetch them")
    sub = p.add_subparsers(dest="weights_command", required=True)
    check = sub.add_parser("check", help="where each weights file is read from, and whether it is there")
    check.set_defaults(func=cmd_check)
    fetch = sub.add_parser("download", help="fetch the missing weights (about 400 MB) into torch's cache "
                                            "($TORCH_HOME/hub/checkpoints) with torch.hub's downloader")
    fetch.add_argument("--mirror", help="a URL holding the same file names instead of download.pytorch.org")
    fetch.set_defaults(func=cmd_download)


def _config():
    from ls_backend.segmentation.weights import WeightsConfig
    from ls_backend.settings import Settings

    return WeightsConfig.from_settings(Settings.from_env())


def cmd_check(args) -> None:
    from ls_backend.segmentation.weights import status

    print_json(status(_config()))


def cmd_download(args) -> None:
    from ls_backend.segmentation.weights import WEIGHTS, download, status

    config = _config()
    before = status(config)
    fetched = [model for model in WEIGHTS if not before[model]["present"] or before[model].get("hash") == "mismatch"]
    for model in fetched:
        download(model, config, args.mirror)
    print_json({"downloaded": fetched, **status(config)})
