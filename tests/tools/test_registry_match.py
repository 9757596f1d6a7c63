"""`finepose registry match` / `registry from-cad` (ls_backend/registry_match.py)."""

import csv
import json

import pytest

from ls_backend.cli.main import build_parser
from ls_backend.registry import build as rm

from tests.support.data import data_path

METADATA = {  # a small ShapeNet-like table: model id -> name
    "a1": "Audi TT Coupe 2007",
    "a2": "2011 Audi TT Hatchback",
    "b1": "BMW M3 Coupe 2012",
    "f1": "Ford F150 Regular Cab 2007-2012",
    "m1": "Mercedes-Benz C-Class Sedan",
    "c1": "Chevrolet Corvette ZR1 2012",
    "c2": "Chevrolet Corvette Convertible 2012",
}
CATEGORIES = [
    "Audi TT Hatchback 2011",  # exact, words reordered
    "BMW M3 Coupe 2012",  # exact
    "Ford F-150 Regular Cab 2012",  # close: F-150 vs F150, year inside 2007-2012
    "Mercedes-Benz C-Class Sedan 2012",  # close: no year in the metadata
    "Audi TT RS Coupe 2012",  # a human must choose
    "Bugatti Veyron 16.4 Coupe 2009",  # nothing like it
]


def run(*argv):
    args = build_parser().parse_args(["registry", *map(str, argv)])
    args.func(args)


def test_normalise_and_score():
    name = rm.normalise("Mercedes-Benz  SL-Class Coupé 2009")
    assert name.tokens == ("mercedes", "benz", "sl", "class", "coupe") and name.years == (2009,)
    assert rm.is_exact(rm.normalise("2011 Audi TT Hatchback"), rm.normalise("audi tt hatchback 2011"))
    assert rm.is_exact(rm.normalise("Ford F-150"), rm.normalise("Ford F150"))
    assert not rm.is_exact(rm.normalise("Audi TT Hatchback 2011"), rm.normalise("Audi TT Hatchback 2012"))
    assert rm.year_similarity((2012,), (2007, 2012)) == 1.0
    assert rm.year_similarity((2009,), (2012,)) == pytest.approx(0.4)
    assert rm.year_similarity((2009,), ()) == 0.5
    same_model = rm.score(rm.normalise("Audi TT Coupe 2012"), rm.normalise("Audi TT Coupe 2007"))
    other_model = rm.score(rm.normalise("Audi TT Coupe 2012"), rm.normalise("Audi R8 Coupe 2012"))
    assert 0 < other_model < same_model < 1


def test_match_exact_accepted_and_unmatched():
    report = rm.match_categories(CATEGORIES, METADATA, top=2, accept=0.85)
    matched = report["matched"]
    assert matched["Audi TT Hatchback 2011"] == {
        "model_id": "a2",
        "name": METADATA["a2"],
        "match": "exact",
        "score": 1.0,
    }
    assert matched["BMW M3 Coupe 2012"]["match"] == "exact"
    assert matched["Ford F-150 Regular Cab 2012"]["model_id"] == "f1"
    assert matched["Ford F-150 Regular Cab 2012"]["match"] == "accepted"
    assert matched["Mercedes-Benz C-Class Sedan 2012"]["model_id"] == "m1"
    assert report["unmatched"] == ["Audi TT RS Coupe 2012", "Bugatti Veyron 16.4 Coupe 2009"]
    tt = report["suggestions"]["Audi TT RS Coupe 2012"]
    assert [s["model_id"] for s in tt] == ["a1", "a2"] and tt[0]["score"] > tt[1]["score"]
    # without --accept only exact matches are taken
    strict = rm.match_categories(CATEGORIES, METADATA)
    assert sorted(strict["matched"]) == ["Audi TT Hatchback 2011", "BMW M3 Coupe 2012"]


def test_two_exact_candidates_go_to_a_human():
    report = rm.match_categories(["Audi TT Coupe 2007"], {**METADATA, "a3": "audi tt coupe 2007"})
    assert report["unmatched"] == ["Audi TT Coupe 2007"]
    assert {s["model_id"] for s in report["suggestions"]["Audi TT Coupe 2007"][:2]} == {"a1", "a3"}


def test_match_command_writes_registry_and_report(tmp_path, capsys):
    (tmp_path / "categories.txt").write_text("\n".join(CATEGORIES) + "\n")
    with open(tmp_path / "car.csv", "w", newline="") as f:  # ShapeNet's metadata CSV layout
        writer = csv.writer(f)
        writer.writerow(["fullId", "category", "wnsynset", "name", "tags"])
        for model_id, name in METADATA.items():
            writer.writerow([f"wss.{model_id}", "Car", "n02958343", name, ""])
    run(
        "match",
        "--categories",
        tmp_path / "categories.txt",
        "--metadata",
        tmp_path / "car.csv",
        "--shapenet-root",
        tmp_path / "ShapeNetCore.v1",
        "--synset",
        "car",
        "--accept",
        "0.85",
        "--out",
        tmp_path / "registry.json",
        "--report",
        tmp_path / "report.json",
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["summary"]["exact"] == 2 and printed["summary"]["accepted"] == 2
    assert printed["summary"]["unmatched"] == 2
    registry = json.loads((tmp_path / "registry.json").read_text())
    entry = registry["Audi TT Hatchback 2011"]
    assert entry["mesh"] == str(tmp_path / "ShapeNetCore.v1" / "02958343" / "a2" / "model.obj")
    assert entry["frame"] == "shapenet_core" and entry["model_id"] == "a2" and entry["category"] == "car"
    assert json.loads((tmp_path / "report.json").read_text())["unmatched"] == printed["unmatched"]


def from_cad(tmp_path, *options, out="r.json"):
    """``registry from-cad --cad tmp_path/cad.txt OPTIONS --out tmp_path/OUT``."""
    run("from-cad", "--cad", tmp_path / "cad.txt", *options, "--out", tmp_path / out)


def test_from_cad_groups_categories_sharing_a_model(tmp_path, capsys):
    ids = [
        "c7bd3c33967a3f80d292079a67d9d7f4",
        "c8fb314a1866d1d2428df271ebc70bc0",
        "c8fb314a1866d1d2428df271ebc70bc0",
        "617993bd3425d570ca2bd098b9203af",
    ]
    (tmp_path / "cad.txt").write_text("\n".join(ids) + "\n")
    (tmp_path / "names.txt").write_text("A 2010\nB 2011\nC 2012\nD 2012\n")
    from_cad(tmp_path, "--names", tmp_path / "names.txt", "--mesh-template", "meshes/{model_id}.obj",
             "--category", "car", out="by_model.json")
    summary = json.loads(capsys.readouterr().out)
    assert summary["categories"] == 4 and summary["models"] == 3 and summary["mesh_files_found"] == 0
    registry = json.loads((tmp_path / "by_model.json").read_text())
    assert registry[ids[1]] == {
        "mesh": f"meshes/{ids[1]}.obj",
        "frame": "shapenet_core",
        "category": "car",
        "categories": ["B 2011", "C 2012"],
    }
    from_cad(
        tmp_path, "--shapenet-root", "/data/sn", "--synset", "airplane", "--by", "category", "--frame", "shapenet",
        out="by_category.json",
    )
    registry = json.loads((tmp_path / "by_category.json").read_text())
    assert registry["4"] == {
        "mesh": f"/data/sn/02691156/{ids[3]}/model.obj", "frame": "shapenet", "category": "aeroplane", "model_id": ids[3]
    }


def test_bad_inputs(tmp_path):
    (tmp_path / "cad.txt").write_text("c7bd3c33967a3f80d292079a67d9d7f4\nAudi TT\n")
    with pytest.raises(ValueError, match="line 2 is not a ShapeNet model id: 'Audi TT'"):
        from_cad(tmp_path, "--mesh-template", "{model_id}.obj")
    (tmp_path / "cad.txt").write_text("c7bd3c33967a3f80d292079a67d9d7f4\n")
    (tmp_path / "names.txt").write_text("A\nB\n")
    with pytest.raises(ValueError, match="has 2 names but .* has 1 model ids"):
        from_cad(tmp_path, "--names", tmp_path / "names.txt", "--mesh-template", "{model_id}.obj")
    with pytest.raises(ValueError, match="either --shapenet-root"):
        from_cad(tmp_path)
    with pytest.raises(ValueError, match="--synset must be"):
        from_cad(tmp_path, "--shapenet-root", "/x", "--synset", "boat")
    with pytest.raises(ValueError, match="must contain"):
        from_cad(tmp_path, "--mesh-template", "x.obj")
    with pytest.raises(ValueError, match=r"give --category \(car, aeroplane\).*no --synset"):
        from_cad(tmp_path, "--mesh-template", "{model_id}.obj")
    (tmp_path / "meta.csv").write_text("model,title\nx,y\n")
    (tmp_path / "cats.txt").write_text("A\n")
    for metadata, message in (("meta.csv", "needs an id column"), ("absent.json", "metadata file not found")):
        with pytest.raises(ValueError, match=message):
            run(
                "match", "--categories", tmp_path / "cats.txt", "--metadata", tmp_path / metadata,
                "--mesh-template", "{model_id}.obj", "--out", tmp_path / "r.json",
            )


@pytest.mark.parametrize(
    "name,synset,categories,models", [("StanfordCars3D", "car", 196, 134), ("FGVC_Aircraft3D", "airplane", 100, 88)]
)
def test_from_cad_on_the_release_lists(tmp_path, capsys, name, synset, categories, models):
    cad = data_path("finegrained_pose", "CAD", f"{name}.txt")
    run("from-cad", "--cad", cad, "--shapenet-root", "/sn", "--synset", synset, "--out", tmp_path / "r.json")
    summary = json.loads(capsys.readouterr().out)
    assert (summary["categories"], summary["models"], summary["entries"]) == (categories, models, models)
    expected = {"car": "car", "airplane": "aeroplane"}[synset]
    registry = json.loads((tmp_path / "r.json").read_text())
    assert {entry["category"] for entry in registry.values()} == {expected}


@pytest.mark.parametrize("entry,words", [
    ({"mesh": "car.obj"}, "registry entry 'A320' has no 'category': give one of car, aeroplane"),
    ({"mesh": "car.obj", "category": "boat"}, "registry entry 'A320' has category 'boat': give one of car, aeroplane"),
])
def test_a_hand_written_registry_without_a_usable_category_is_refused(tmp_path, entry, words):
    """Nothing guesses a category from a model id ("A320" used to become a car)."""
    from ls_backend.errors import RegistryError
    from ls_backend.registry import Registry

    (tmp_path / "registry.json").write_text(json.dumps({"A320": entry}))
    with pytest.raises(RegistryError, match=words):
        Registry.load(tmp_path / "registry.json")
