"""Every command, given bad arguments, answers one line and a non-zero exit: never a
traceback. And the stores users end up with (empty, without statistics, merged) either work
or say what to do."""

import shutil

import duckdb
import numpy as np
import pytest
from typer.testing import CliRunner

import actdb
from actdb.cli import app
from tests.helpers import SIZE, WEIGHTS, class_image

runner = CliRunner()


@pytest.fixture(scope="module")
def stores(built_store, tmp_path_factory):
    """The built store, a copy without statistics, an empty store, and a merged store."""
    base = tmp_path_factory.mktemp("cli-errors")
    nostats = base / "nostats"
    shutil.copytree(built_store, nostats)
    con = duckdb.connect(str(nostats / "catalog.duckdb"))
    for t in ("stats_config_all", "centroids_all", "class_stats_all", "pair_stats_all",
              "nn_sample_all"):
        con.execute(f"DELETE FROM {t}")
    con.close()
    bad = base / "bad" / "n01440764"
    bad.mkdir(parents=True)
    (bad / "x.JPEG").write_bytes(b"not an image")
    empty = base / "empty"
    actdb.open(empty).ingest(bad.parent, weights=WEIGHTS, image_size=SIZE, precision="fp32")
    merged = base / "merged"
    actdb.merge(merged, [built_store])
    class_image(0, 1).save(base / "q.png")
    np.save(base / "short.npy", np.zeros(7, np.float32))
    (base / "afile").write_text("x")
    (base / "text.keras").write_text("not a model")
    return {"S": str(built_store), "NOSTATS": str(nostats), "EMPTY": str(empty),
            "MERGED": str(merged), "Q": str(base / "q.png"), "SHORT": str(base / "short.npy"),
            "MISSING": str(base / "missing"), "NODIR": str(base / "no" / "dir"),
            "AFILE": str(base / "afile"), "BASE": str(base)}


BAD = [
    ("ingest {MISSING} --store {BASE}/s1", "dataset root"),
    ("ingest {BASE}/bad --store {BASE}/s2 --split test", "--split must be one of"),
    ("ingest {BASE}/bad --store {BASE}/s3 --batch-size 0", "--batch-size must be at least 1"),
    ("ingest {BASE}/bad --store {BASE}/s4 --shard 3/2", "bad --shard"),
    ("ingest {BASE}/bad --store {AFILE}/s --weights random:0", "afile"),
    ("ingest {BASE}/bad --store {BASE}/s5 --weights random:x", "random:SEED"),
    ("ingest {BASE}/bad --store {BASE}/s6 --weights {MISSING}.h5", "not found"),
    ("info --store {MISSING}", "no actdb store"),
    ("check --store {MISSING}", "no actdb store"),
    ("index --store {S} --kind nope", "unknown index kind"),
    ("index --store {S} --metric nope", "unknown metric"),
    ("nearest {MISSING}.png --store {S}", "is not a file"),
    ("nearest id:999999 --store {S}", "no stored image"),
    ("nearest id:abc --store {S}", "id:<integer image_id>"),
    ("nearest id:1 -k 0 --store {S}", "-k must be at least 1"),
    ("nearest id:1 --classes nope --store {S}", "unknown class"),
    ("nearest id:1 --split test --store {S}", "unknown split"),
    ("nearest id:1 --where 'nope = 1' --store {S}", "bad --where"),
    ("nearest id:1 --json --csv --store {S}", "choose one"),
    ("nearest {SHORT} --store {S}", "dim 512"),
    ("nearest {Q} --store {EMPTY}", "no images yet"),
    ("nearest id:1 --space nope --store {S}", "no space 'nope'"),
    ("nearest {SHORT} --space all --store {S}", "a vector of one space"),
    ("ingest {BASE}/bad --store {BASE}/s7 --layer a --layers b,c", "--layer goes without it"),
    ("ingest {BASE}/bad --store {BASE}/s8 --layers block5_conv4,block5_conv4",
     "name each layer once"),
    ("compare --sample 0 --store {S}", "--sample must be at least 4 images"),
    ("plot cka -o {BASE}/cka.png --store {S}", "compare needs two or more"),
    ("layers inception_v3 --image-size 10", "inception_v3 cannot take 10x10 px images"),
    ("layers {BASE}/text.keras", "text.keras is not a Keras model file"),
    ("layers vgg19 --preprocess bogus", "--preprocess 'bogus' is unknown"),
    ("ingest {BASE}/bad --store {BASE}/s9 --layers ''", "--layers names no layer"),
    ("ingest {BASE}/bad --store {BASE}/s9 --layers ,", "--layers names no layer"),
    ("ingest {BASE}/bad --store {S} --precision fp16", "--precision 'fp16' is unknown"),
    ("ingest {BASE}/bad --store {S} --resize bogus", "--resize 'bogus' is unknown"),
    ("ingest {BASE}/bad --store {BASE}/s10 --weights random:0 --layers nosuchlayer",
     "unknown layer 'nosuchlayer' for vgg19; `actdb layers"),  # no far-fetched "close:"
    ("centroids id:1 -k 0 --store {S}", "-k must be at least 1"),
    ("centroids id:1 --store {NOSTATS}", "not computed yet; run `actdb stats`"),
    ("stats --pairs-per-class 0 --store {S}", "--pairs-per-class must be at least 1"),
    ("sql 'SELECT 1' -o {NODIR}/x.csv --store {S}", "no/dir/x.csv"),
    ("sql @{MISSING}.sql --store {S}", "missing.sql"),
    ("sql 'select 1; select 2' --store {S}", "exactly one SQL statement"),
    ("sql 'SELECT 1' --format xml --store {S}", "--format must be"),
    ("sql 'SELECT 1' --format parquet --store {S}", "needs -o FILE"),
    ("examples --channel 9999 --store {S}", "out of range"),
    ("examples --channel 1 -k 0 --store {S}", "-k must be at least 1"),
    ("embed {Q} -o {NODIR}/v.npy --store {S}", "no/dir/v.npy"),
    ("embed {Q} -o {BASE}/v.txt --store {S}", "FILE.npy or FILE.parquet"),
    ("embed {MISSING}.png -o {BASE}/v.npy --store {S}", "is not a file"),
    ("predict {MISSING}.png --weights random:0", "is not a file"),
    ("predict {Q} --models nope --weights random:0", "unknown model"),
    ("predict {Q} --top 0 --weights random:0", "--top must be between"),
    ("predict {Q} --models vgg16 --weights vgg19=random:0", "not among the models"),
    ("dream -o {BASE}/x.nope --weights random:0 --size 32", "image format"),
    ("dream -o {BASE}/x.png --weights random:0 --size 32 --steps 0", "--steps must be"),
    ("dream -o {BASE}/x.png --weights random:0 --size 8", "--image-size must be at least 32"),
    ("dream -o {BASE}/x.png --weights random:0 --size 32 --recipe nope", "unknown recipe"),
    ("plot pca -o {BASE}/x.gif --store {S}", ".png, .svg or .pdf"),
    ("plot pca -o {NODIR}/x.png --store {S}", "no/dir/x.png"),
    ("plot profile id:1 --classes tench -o {BASE}/p.png --store {NOSTATS}", "not computed"),
    ("plot pca -o {BASE}/e.png --store {EMPTY}", "no labelled images"),
    ("report id:1 -o {NODIR}/r.html --store {S}", "no/dir/r.html"),
    ("report id:1 -k 0 --store {S}", "-k must be at least 1"),
    ("merge {BASE}/m {MISSING}", "no actdb store"),
    ("merge {S} {S}", "must not also be one of the stores"),
]


@pytest.mark.parametrize("line,needle", BAD, ids=[b[0].split()[0] + ": " + b[1] for b in BAD])
def test_bad_arguments_get_one_line_and_a_nonzero_exit(stores, line, needle):
    import shlex

    res = runner.invoke(app, shlex.split(line.format(**stores)))
    assert res.exit_code != 0, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert needle in lines[0], lines[0]


def test_a_merged_store_answers_everything(stores, tmp_path):
    for args in (["nearest", "id:1", "-k", "3"], ["centroids", "id:1"],
                 ["plot", "profile", "id:1", "--classes", "tench", "-o",
                  str(tmp_path / "p.png")], ["stats"], ["check"]):
        res = runner.invoke(app, [*args, "--store", stores["MERGED"]])
        assert res.exit_code == 0, (args, res.output)


def test_a_store_without_statistics_still_answers_nearest(stores):
    res = runner.invoke(app, ["nearest", "id:1", "--store", stores["NOSTATS"], "--json"])
    assert res.exit_code == 0, res.output
    assert '"nn_percentile": null' in res.stdout
