"""croissant.json of a published release: Croissant 1.1 (MLCommons) with the responsible-AI (RAI) fields.

Written as plain JSON-LD (no mlcroissant needed to publish); the tests validate it with mlcroissant
and read its records. The distribution is the Parquet shards (one FileSet per table); the record sets
are the frames and clips tables' scalar columns; the RAI fields say what the catalog knows.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from avsbench_tools import formats
from avsbench_tools.fsutil import sha256_file

CONFORMS_TO = ["http://mlcommons.org/croissant/1.1", "http://mlcommons.org/croissant/RAI/1.0"]
LICENCE_URL = "https://creativecommons.org/licenses/by-nc/4.0/"

CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "arrayShape": "cr:arrayShape", "citeAs": "cr:citeAs",
    "column": "cr:column", "conformsTo": "dct:conformsTo", "containedIn": "cr:containedIn",
    "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet",
    "format": "cr:format", "includes": "cr:includes", "isArray": "cr:isArray", "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath", "key": "cr:key", "md5": "cr:md5", "parentField": "cr:parentField",
    "path": "cr:path", "recordSet": "cr:recordSet", "references": "cr:references", "regex": "cr:regex",
    "repeated": "cr:repeated", "replace": "cr:replace", "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source", "subField": "cr:subField",
    "transform": "cr:transform",
}

# (column, Croissant data type, description) of the scalar columns each record set exposes
FRAME_FIELDS = [
    ("clip", "sc:Text", "Clip id (the release's name for it)."),
    ("second", "sc:Integer", "Second of the clip the frame was sampled in (0-based)."),
    ("split", "sc:Text", "Split (train, val, test; Ref-AVS test_s/test_u/test_n)."),
    ("category", "sc:Text", "S4: category; AVSS: subset v1s/v1m/v2; Ref-AVS: the referred object's category."),
    ("sounding", "sc:Boolean", "The mask holds a sounding object."),
    ("annotated", "sc:Boolean", "The layout has a ground-truth mask for this frame."),
    ("mask_source", "sc:Text", "review (a person reviewed the mask) or proposal (machine pre-annotation)."),
    ("qa_iou", "sc:Float", "IoU of the machine proposal with the reviewed mask (studio QA)."),
    ("backend", "sc:Text", "Pre-annotation backend that proposed the mask."),
    ("checkpoint", "sc:Text", "Checkpoints of that backend (id@sha256 prefix)."),
]
CLIP_FIELDS = [
    ("clip", "sc:Text", "Clip id."),
    ("split", "sc:Text", "Split."),
    ("video_id", "sc:Text", "Source video id."),
    ("start", "sc:Float", "Start of the clip in the source video, seconds."),
    ("seconds", "sc:Integer", "Clip length, seconds."),
    ("licence", "sc:Text", "The source video's licence."),
    ("source_url", "sc:Text", "Where the source video is."),
]


def _record_set(table: str, fields: list, key: list[str], description: str) -> dict:
    return {
        "@type": "cr:RecordSet", "@id": table, "name": table, "description": description,
        "key": [{"@id": f"{table}/{k}"} for k in key],
        "field": [{"@type": "cr:Field", "@id": f"{table}/{col}", "name": col, "description": desc, "dataType": dt,
                   "source": {"fileSet": {"@id": f"{table}-parquet"}, "extract": {"column": col}}}
                  for col, dt, desc in fields],
    }


def _counts(d: dict) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))) or "none recorded"


def _agreement(facts: dict) -> str:
    a = facts.get("agreement")
    if not a or not a.get("pairs"):
        return " Agreement between annotators: no frame was annotated by two people."
    return (f" Agreement between annotators: mean IoU {a['mean_iou']} over {a['pairs']} pairs on {a['frames']} "
            "frames annotated by two people or more.")


def rai_fields(fmt: str, res, facts: dict) -> dict:
    """The RAI 1.0 fields, in words built from `facts` (provenance.release_facts)."""
    f = formats.get(fmt)
    found = (f"Sources by kind: {_counts(facts['source_kinds'])}. Search keywords: "
             f"{', '.join(facts['keywords']) or 'none'}. Recipe: {facts['recipe']}." if "source_kinds" in facts else
             "How the clips were found is recorded in the workspace catalog, which was not given to publish.")
    made = (f"{facts['frames_reviewed']} of {facts['frames_known']} annotated frames have masks reviewed by people "
            f"in Label Studio ({len(facts['annotators'])} annotators); the rest are machine proposals."
            if facts["frames_known"] else "Per-frame provenance unknown (publish without --workspace).")
    card = "; ".join(facts["card_lines"])
    return {
        "rai:dataCollection": (f"Clips cut from source videos with avs-tools (collect, sample), {f.clip_seconds[0]} s "
                               f"each, frames sampled by the {f.sampling} rule of {f.title}. {found}"),
        "rai:dataCollectionType": ["Web Scraping" if facts.get("source_kinds", {}).get("search") else "Others"],
        "rai:dataCollectionRawData": "Source videos (YouTube or local files) listed per clip in the clips table.",
        "rai:dataPreprocessingProtocol": ("Frames resized to the layout's size; audio resampled to 16 kHz; log-mel "
                                          "examples computed exactly as torchvggish (the official code) does."),
        "rai:dataAnnotationProtocol": (f"Masks proposed by machine (pre-annotation), then reviewed in Label Studio "
                                       f"per the project's annotation guidelines. {made} Release card: {card}"),
        "rai:dataAnnotationPlatform": "Label Studio (avs-tools push / pull).",
        "rai:annotationsPerItem": (f"{len(facts['annotators'])} distinct annotators; per frame see the "
                                   "`annotators` column of the frames table."),
        "rai:machineAnnotationTools": [f"{k}: {v} frames" for k, v in facts["machine_tools"].items()]
        or ["pre-annotation backend not recorded in the release"],
        "rai:dataAnnotationAnalysis": (f"Mean IoU of machine proposals with the reviewed masks: {facts['qa_iou_mean']} "
                                       f"over {facts['qa_frames']} frames." if facts["qa_frames"] else
                                       "No studio QA (proposal vs review IoU) recorded.") + _agreement(facts),
        "rai:dataLimitations": ("Small, curated clips; masks partly machine-made where mask_source is 'proposal'; "
                                "categories follow the recipe, not a census of sounds; audio may hold off-screen "
                                "sounds. Models trained on AVS data are known to segment salient objects whatever "
                                "the audio says: evaluate with negative-audio sets (avs-tools export "
                                "--negative-audio)."),
        "rai:dataBiases": ("Clips come from what the search keywords and lists found: categories, places and "
                           "people follow what is uploaded and licensed, not the world."),
        "rai:personalSensitiveInformation": ("Videos may show people and carry voices; no names or other personal "
                                             "data are added. Licences per clip: "
                                             f"{_counts(facts['licences'])}."),
        "rai:dataUseCases": "Training and evaluating audio-visual segmentation models (AVSBench / Ref-AVS protocols).",
        "rai:dataSocialImpact": "Research benchmark; not for surveillance or identifying people.",
        "rai:dataReleaseMaintenancePlan": "Re-published with avs-tools from its workspace; checksums in SHA256SUMS.",
    }


def croissant(rel, res, out: Path, facts: dict) -> dict:
    """The Croissant document of the folder `out` publish is writing (its shards must be written)."""
    f = formats.get(rel.fmt)
    files = [{"@type": "cr:FileObject", "@id": s, "name": s, "contentUrl": s, "encodingFormat": "application/x-parquet",
              "sha256": sha256_file(out / s)} for s in res.shards if not s.startswith("data/files/")]
    sets = [{"@type": "cr:FileSet", "@id": f"{t}-parquet", "name": f"{t}-parquet", "encodingFormat":
             "application/x-parquet", "includes": f"data/{t}/*.parquet",
             "description": f"The {t} table, one shard or more per split."} for t in ("frames", "clips")]
    doc = {
        "@context": CONTEXT, "@type": "sc:Dataset", "conformsTo": CONFORMS_TO,
        "name": f"{rel.fmt}-release", "description": (f"Audio-visual segmentation release in the {f.title} layout, "
                                                      f"{res.clips} clips, {res.frames} frames; published by avs-tools."),
        "license": LICENCE_URL, "url": "https://huggingface.co/datasets", "version": "1.0.0",
        "datePublished": datetime.date.today().isoformat(),
        "citeAs": "Made with avs-tools; cite the layout's paper: " + f.title,
        "creator": {"@type": "sc:Organization", "name": "avs-tools"},
        "keywords": ["audio-visual segmentation", rel.fmt],
        "distribution": files + sets,
        "recordSet": [
            _record_set("frames", FRAME_FIELDS + ([("fid", "sc:Integer", "Referred object (Ref-AVS fid).")]
                                                  if f.per_object else []),
                        ["clip", "second"] + (["fid"] if f.per_object else []),
                        "One row per sampled frame (image and mask bytes are in the Parquet files)."),
            _record_set("clips", CLIP_FIELDS, ["clip"], "One row per clip (audio and log-mel are in the Parquet files)."),
        ],
    }
    doc.update(rai_fields(rel.fmt, res, facts))
    return doc


def dumps(doc: dict) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
