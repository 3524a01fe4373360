"""Element ids of the dashboard, in one place (SPEC §7 names the stable ones)."""

# Stable ids from SPEC §7 (browser tests and users' automation rely on them).
EXPERIMENT_NAME = "experiment-name"
UPLOAD_DATA = "upload-data"
HEALTH_STATUS = "health-status"
DECISION_BADGE = "decision-badge"
SAVE_EXPERIMENT = "save-experiment"
DOWNLOAD_MD = "download-md"
DOWNLOAD_HTML = "download-html"
DOWNLOAD_PDF = "download-pdf"
HISTORY_TABLE = "history-table"

# App shell
SESSION_STORE = "session-store"
NAVBAR = "navbar"

# New experiment
HYPOTHESIS = "hypothesis"
PRIMARY_METRIC = "primary-metric"
CONTROL_NAME = "control-name"
EXPECTED_SPLIT = "expected-split"
OWNER = "owner"
TAGS = "tags"
SEGMENTS = "segments"
PLANNED_MDE = "planned-mde"
SAMPLE_SELECT = "sample-select"
LOAD_SAMPLE = "load-sample"
REANALYZE = "reanalyze"
UPLOAD_MESSAGE = "upload-message"
HEALTH_PANEL = "health-panel"
UPLOAD_CHECKED = "upload-checked"
UPLOAD_LIMIT = "upload-limit"
UPLOAD_LIMIT_MESSAGE = "upload-limit-message"
NEXT_STEP = "next-step"

# Power calculator
PLAN_METRIC_TYPE = "plan-metric-type"
PLAN_BASELINE = "plan-baseline"
PLAN_MEAN = "plan-mean"
PLAN_STD = "plan-std"
PLAN_MDE = "plan-mde"
PLAN_RELATIVE = "plan-relative"
PLAN_ALPHA = "plan-alpha"
PLAN_POWER = "plan-power"
PLAN_DAILY_USERS = "plan-daily-users"
PLAN_RESULT = "plan-result"
PLAN_STORE = "plan-store"
PLAN_USE = "plan-use"

# Results
STATUS_BANNER = "status-banner"
PRIMARY_CARD = "primary-card"
EFFECT_SCALE = "effect-scale"
EFFECT_CHART = "effect-chart"
POSTERIOR_CHART = "posterior-chart"
GUARDRAIL_TABLE = "guardrail-table"
GUARDRAIL_CHART = "guardrail-chart"
SAVE_MESSAGE = "save-message"
RESULTS_BODY = "results-body"

# Memo
MEMO_PREVIEW = "memo-preview"
MEMO_NOTES = "memo-notes"
SAVE_NOTES = "save-notes"
NOTES_MESSAGE = "notes-message"
DOWNLOAD_MD_FILE = "download-md-file"
DOWNLOAD_HTML_FILE = "download-html-file"
DOWNLOAD_PDF_FILE = "download-pdf-file"
PDF_STATUS = "pdf-status"

# History
HISTORY_SEARCH = "history-search"
HISTORY_DECISION = "history-decision"
HISTORY_DATES = "history-dates"
HISTORY_COUNT = "history-count"
COMPARE_BUTTON = "compare-button"
COMPARE_CHART = "compare-chart"
COMPARE_MESSAGE = "compare-message"

# Experiment page
OPEN_IN_WORKSPACE = "open-in-workspace"
EXPERIMENT_URL = "experiment-url"
LATEST_EXPERIMENTS = "latest-experiments"
