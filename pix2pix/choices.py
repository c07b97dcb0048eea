"""The allowed values of every enumerated setting: one place for the params contract and the code that checks it.

Plain constants with no imports, so that params validation (:mod:`pix2pix.params`) and the library modules
that validate their own configs share them without pulling each other into every stage's dependencies.
"""

DATASETS = ("sample", "cars", "dayton", "folder")
# Stored pairs are A|B with A = the conditioning domain (colour mask, aerial view); "BtoA" swaps at load time.
DIRECTIONS = ("AtoB", "BtoA")
RESIZE_POLICIES = ("stretch", "pad", "crop")
SPLIT_MODES = ("auto", "random", "official", "location")
SAMPLE_LAYOUTS = ("seed", "kaggle")
# Panel order of Dayton 4-panel images: detected, or one of the two published orders.
PANEL_ORDERS = ("auto", "street_aerial", "aerial_street")
NORMS = ("batch", "instance")
DROPOUT_PLACEMENTS = ("paper", "pytorch")
# U-Net decoder upsampling: the paper's 4×4 stride-2 transposed conv, or nearest ×2 then a 3×3 conv (no
# uneven kernel overlap, so no period-2 checkerboard by construction; Odena et al., Distill 2016).
UPSAMPLE_MODES = ("transposed", "resize")
GAN_LOSSES = ("vanilla", "lsgan", "hinge")
AMP_MODES = ("auto", "bf16", "fp16", "off")
# full: the whole network (downloaded; gives IS); trunk: the offline feature trunk (FID/KID only).
INCEPTION_CHOICES = ("auto", "full", "trunk")
# `data.palette`: this word, a list of [R, G, B], or a file with one of these suffixes.
PALETTE_AUTO = "auto"
PALETTE_FILE_SUFFIXES = (".yaml", ".yml", ".json", ".csv")
# `data.classes`: one name a line, or a CSV with a name (and maybe id and colour) column.
CLASS_FILE_SUFFIXES = (".txt", ".csv")
# What `pix2pix translate` reads its inputs as: detected, label maps (resized nearest) or photos (bicubic).
TRANSLATE_INPUTS = ("auto", "labels", "photo")
# What a generator file says its input is (``description.input_kind``): a colour label map or a photo.
GENERATOR_INPUT_KINDS = ("label_map", "photo")
# `pix2pix export-model --format`: ONNX (any ONNX runtime) or torch.export's pt2 archive.
EXPORT_FORMATS = ("onnx", "pt2")
# train.gpus: a number of processes (one per GPU), or every visible GPU.
ALL_GPUS = "all"
# Test-time batch norm: the statistics of each test batch (the paper, §3.3, and the authors' test.py without
# --eval) or the running averages kept from training (PyTorch's eval mode).
TEST_BATCHNORM_MODES = ("test_batch", "running")
