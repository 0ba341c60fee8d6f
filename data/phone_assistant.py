"""Generator of the embedded `phone-assistant` dataset.

Vietnamese requests to a phone assistant, word-segmented the way PhoBERT expects
(syllables of one word joined by `_`). The label structure is what matters for the
ablation: PHONE, ACTION, MODE and PLATFORM spans are always exactly one token, so their
`I-` tags never occur in training and end up in the invalid-label mask, as in the
original project; CONTACT, TIME, DATE, MESSAGE, APP and REPEAT spans are often longer.

Templates are plain strings. `{TYPE}` is an entity slot filled from the value
generators below, `{ACTION:a|b}` is a one-token ACTION entity chosen from the
alternatives, every other word is tagged `O`. The whole output is a function of the seed.
"""
from __future__ import annotations

import random
import re
import unicodedata

from nlu_collapse.data.formats import Example

# intent -> (relative frequency, {command: [templates]}). Frequencies are deliberately
# imbalanced (largest / smallest = 22 / 5): real assistant traffic is dominated by calls.
INTENTS: dict[str, tuple[int, dict[str, list[str]]]] = {
    "add-contacts": (9, {
        "save_new_contact": [
            "{ACTION:lưu|thêm} số {PHONE} vào danh_bạ với tên {CONTACT}",
            "{ACTION:lưu|thêm} {CONTACT} số {PHONE} vào danh_bạ",
            "{ACTION:tạo} liên_hệ mới tên {CONTACT} số {PHONE}",
            "số {PHONE} là của {CONTACT} , {ACTION:lưu} lại",
        ],
        "add_number_to_contact": [
            "{ACTION:thêm} số {PHONE} cho {CONTACT}",
            "{CONTACT} có số mới {PHONE} , {ACTION:cập_nhật} vào danh_bạ",
        ],
    }),
    "block-contacts": (5, {
        "block_number": [
            "{ACTION:chặn} số {PHONE}",
            "{ACTION:chặn} cuộc_gọi từ {CONTACT}",
            "đừng cho {CONTACT} gọi tới nữa , {ACTION:chặn} luôn",
        ],
        "unblock_number": [
            "{ACTION:bỏ_chặn} số {PHONE}",
            "{ACTION:bỏ_chặn} {CONTACT} trong danh_sách đen",
        ],
    }),
    "call": (22, {
        "call_contact": [
            "{ACTION:gọi} {CONTACT}",
            "{ACTION:gọi} điện cho {CONTACT}",
            "{ACTION:gọi} cho {CONTACT} ngay",
            "{CONTACT} , {ACTION:gọi} cho người này",
            "{ACTION:kết_nối} cuộc_gọi tới {CONTACT}",
        ],
        "call_number": [
            "{ACTION:gọi} số {PHONE}",
            "{ACTION:bấm} số {PHONE}",
            "{PHONE} , {ACTION:gọi} số này",
        ],
        "video_call": [
            "{ACTION:gọi} video cho {CONTACT} qua {PLATFORM}",
            "{ACTION:gọi} {PLATFORM} cho {CONTACT}",
            "qua {PLATFORM} {ACTION:gọi} video {CONTACT}",
        ],
    }),
    "change-mode": (12, {
        "turn_on_mode": [
            "{ACTION:bật} {MODE}",
            "{ACTION:bật} chế_độ {MODE}",
            "{ACTION:chuyển} sang chế_độ {MODE}",
            "{MODE} , {ACTION:bật} lên",
        ],
        "turn_off_mode": [
            "{ACTION:tắt} {MODE}",
            "{ACTION:tắt} chế_độ {MODE} đi",
            "{MODE} {ACTION:tắt} giúp mình",
        ],
    }),
    "delete-contacts": (5, {
        "delete_contact": [
            "{ACTION:xoá|xóa} {CONTACT} khỏi danh_bạ",
            "{ACTION:xoá|xóa} liên_hệ {CONTACT}",
        ],
        "delete_number": [
            "{ACTION:xoá|xóa} số {PHONE}",
            "{ACTION:xoá|xóa} số {PHONE} của {CONTACT}",
        ],
    }),
    "open-app": (10, {
        "open_app": [
            "{ACTION:mở} {APP}",
            "{ACTION:mở} ứng_dụng {APP}",
            "{ACTION:vào} {APP} cho mình",
        ],
        "close_app": [
            "{ACTION:đóng|tắt} {APP}",
            "{ACTION:thoát} {APP} ra",
        ],
    }),
    "search-contacts": (7, {
        "search_by_name": [
            "{ACTION:tìm} {CONTACT} trong danh_bạ",
            "số của {CONTACT} là bao_nhiêu",
            "{ACTION:tìm} số điện_thoại của {CONTACT}",
        ],
        "search_by_number": [
            "số {PHONE} là của ai",
            "{ACTION:tra} số {PHONE}",
        ],
    }),
    "send-message": (16, {
        "send_sms": [
            "{ACTION:nhắn} {CONTACT} là {MESSAGE}",
            "{ACTION:gửi} tin_nhắn cho {CONTACT} nội_dung {MESSAGE}",
            "{ACTION:nhắn_tin} cho số {PHONE} : {MESSAGE}",
            "{ACTION:soạn} tin cho {CONTACT} {MESSAGE}",
        ],
        "send_via_app": [
            "{ACTION:nhắn} {PLATFORM} cho {CONTACT} là {MESSAGE}",
            "qua {PLATFORM} {ACTION:gửi} {CONTACT} : {MESSAGE}",
        ],
    }),
    "set-alarm": (14, {
        "alarm_once": [
            "{ACTION:đặt} báo_thức lúc {TIME}",
            "{ACTION:đặt} báo_thức {TIME} {DATE}",
            "{ACTION:hẹn} giờ {TIME}",
            "{DATE} {ACTION:gọi} mình dậy lúc {TIME}",
        ],
        "alarm_repeat": [
            "{ACTION:đặt} báo_thức {TIME} {REPEAT}",
            "{REPEAT} {ACTION:báo_thức} lúc {TIME}",
        ],
        "cancel_alarm": [
            "{ACTION:huỷ|hủy} báo_thức {TIME}",
            "{ACTION:tắt} báo_thức {DATE}",
        ],
    }),
}

PREFIXES = ["", "", "", "", "ơi", "trợ_lý ơi", "làm_ơn", "vui_lòng", "bạn ơi", "hey",
            "giúp mình", "nhờ bạn", "cho mình", "này"]
SUFFIXES = ["", "", "", "", "nhé", "nha", "giúp mình", "với", "đi", "giùm tôi", "nhé bạn",
            "cảm_ơn", "được không", "ngay nhé"]

TITLES = ["anh", "chị", "em", "cô", "chú", "bác", "ông", "bà", "cô_giáo", "thầy", "sếp", "bạn"]
NAMES = ["Minh", "Lan", "Hùng", "Hoa", "Tuấn", "Trang", "Nam", "Hằng", "Dũng", "Linh",
         "Phương", "Quân", "Thảo", "Long", "Mai", "Hiếu", "Ngọc", "Sơn", "Vy", "Khoa", "Hà",
         "Bình", "Châu", "Đức", "Thu", "Yến", "Phúc", "Tâm", "Huy", "Nhung"]
FULL_NAMES = ["Nguyễn_Văn_An", "Trần_Thị_Bích", "Lê_Hoàng_Nam", "Phạm_Minh_Tuấn",
              "Võ_Thị_Sáu", "Đặng_Quốc_Bảo", "Bùi_Thu_Hà", "Hoàng_Anh_Dũng"]
RELATIONS = ["mẹ", "bố", "vợ", "chồng", "ông_nội", "bà_ngoại", "con_gái", "em_trai"]
DESCRIPTORS = ["kế_toán", "công_ty", "hàng_xóm", "lớp_trưởng", "giao_hàng", "phòng nhân_sự"]
MODES = ["wifi", "bluetooth", "4g", "5g", "máy_bay", "im_lặng", "rung", "tiết_kiệm_pin",
         "không_làm_phiền", "định_vị", "hotspot", "nfc"]
PLATFORMS = ["zalo", "messenger", "viber", "telegram", "facebook", "whatsapp", "skype"]
APPS = ["youtube", "máy_ảnh", "google maps", "zing mp3", "tiktok", "spotify", "shopee",
        "grab", "lịch", "đồng_hồ", "cài_đặt", "thư_viện ảnh", "máy_tính", "ghi_chú", "chrome",
        "gmail", "ngân_hàng số"]
DATES = ["ngày_mai", "hôm_nay", "thứ_hai tuần sau", "chủ_nhật", "tối nay", "sáng mai",
         "cuối_tuần này", "thứ_bảy", "ngày kia"]
REPEATS = ["mỗi ngày", "hằng_ngày", "các ngày trong tuần", "thứ_hai đến thứ_sáu", "mỗi sáng",
           "cuối_tuần", "hai ngày một lần"]
MESSAGES = ["anh về muộn nhé", "em đang họp gọi lại sau", "tối nay ăn cơm nhà không",
            "nhớ mua sữa", "chúc mừng sinh_nhật", "mai mấy giờ họp", "đến nơi chưa",
            "con tan học rồi", "gửi mình file báo_cáo", "cảm_ơn nhiều nha", "đợi em 5 phút",
            "đang kẹt xe", "mình tới cổng rồi", "họp dời sang chiều", "nhớ uống thuốc",
            "ok", "chuyển khoản rồi nhé", "đi ăn trưa không"]
PERIODS = ["sáng", "trưa", "chiều", "tối"]


def _phone(rng: random.Random) -> str:
    """A Vietnamese phone number in one of the ways people type it; always one token."""
    prefix = rng.choice(["09", "03", "07", "08", "05"]) + str(rng.randint(0, 9))
    rest = "".join(str(rng.randint(0, 9)) for _ in range(6))
    local = prefix + rest
    form = rng.randrange(6)
    if form == 0:
        return local
    if form == 1:
        return f"{local[:4]}.{local[4:7]}.{local[7:]}"
    if form == 2:
        return f"{local[:4]}-{local[4:7]}-{local[7:]}"
    if form == 3:
        return "+84" + local[1:]
    if form == 4:
        return f"(028){rng.randint(3000_0000, 3999_9999)}"
    return "1900" + "".join(str(rng.randint(0, 9)) for _ in range(4))


def _contact(rng: random.Random) -> str:
    form = rng.randrange(6)
    if form in (0, 1):
        return f"{rng.choice(TITLES)} {rng.choice(NAMES)}"
    if form == 2:
        return rng.choice(FULL_NAMES)
    if form == 3:
        return rng.choice(RELATIONS)
    if form == 4:
        return f"{rng.choice(TITLES)} {rng.choice(NAMES)} {rng.choice(DESCRIPTORS)}"
    return rng.choice(NAMES)


def _time(rng: random.Random) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([0, 5, 10, 15, 20, 30, 45])
    form = rng.randrange(5)
    if form == 0:
        return f"{hour} giờ {rng.choice(PERIODS)}"
    if form == 1:
        return f"{hour} giờ {minute} phút" if minute else f"{hour} giờ đúng"
    if form == 2:
        return f"{hour}h{minute:02d}"
    if form == 3:
        return f"{hour}:{minute:02d}"
    return f"{hour} giờ rưỡi {rng.choice(PERIODS)}"


def _date(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return f"ngày {rng.randint(1, 28)} tháng {rng.randint(1, 12)}"
    return rng.choice(DATES)


SLOT_VALUES = {
    "PHONE": _phone,
    "CONTACT": _contact,
    "TIME": _time,
    "DATE": _date,
    "MODE": lambda rng: rng.choice(MODES),
    "PLATFORM": lambda rng: rng.choice(PLATFORMS),
    "APP": lambda rng: rng.choice(APPS),
    "REPEAT": lambda rng: rng.choice(REPEATS),
    "MESSAGE": lambda rng: rng.choice(MESSAGES),
}
SLOT_RE = re.compile(r"\{([A-Z]+)(?::([^}]*))?\}")
NO_DIACRITICS_SHARE = 0.15


def strip_diacritics(word: str) -> str:
    """`đặt báo_thức` -> `dat bao_thuc`: how many users type on a phone keyboard."""
    decomposed = unicodedata.normalize("NFD", word.replace("đ", "d").replace("Đ", "D"))
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def render(template: str, rng: random.Random) -> tuple[list[str], list[str]]:
    """Fill one template; returns word tokens and their BIO tags."""
    tokens: list[str] = []
    tags: list[str] = []
    for piece in template.split():
        match = SLOT_RE.fullmatch(piece)
        if match is None:
            tokens.append(piece)
            tags.append("O")
            continue
        entity, choices = match.groups()
        value = rng.choice(choices.split("|")) if choices else SLOT_VALUES[entity](rng)
        words = value.split()
        tokens.extend(words)
        tags.extend([f"B-{entity}"] + [f"I-{entity}"] * (len(words) - 1))
    return tokens, tags


def sample_example(rng: random.Random) -> Example:
    names = list(INTENTS)
    intent = rng.choices(names, weights=[INTENTS[n][0] for n in names])[0]
    commands = INTENTS[intent][1]
    command = rng.choice(sorted(commands))
    tokens, tags = render(rng.choice(commands[command]), rng)
    prefix, suffix = rng.choice(PREFIXES).split(), rng.choice(SUFFIXES).split()
    tokens = prefix + tokens + suffix
    tags = ["O"] * len(prefix) + tags + ["O"] * len(suffix)
    if rng.random() < NO_DIACRITICS_SHARE:
        tokens = [strip_diacritics(t) for t in tokens]
    return Example(tokens=tokens, tags=tags, intent=intent, command=command)


def generate(seed: int = 13, sizes: tuple[int, int, int] = (4000, 500, 500)) -> dict[str, list[Example]]:
    """Distinct sentences, shuffled and cut into train/dev/test: no sentence is in two splits."""
    rng = random.Random(seed)
    wanted = sum(sizes)
    seen: set[tuple[str, ...]] = set()
    examples: list[Example] = []
    for _ in range(wanted * 50):
        example = sample_example(rng)
        key = tuple(example.tokens)
        if key not in seen:
            seen.add(key)
            examples.append(example)
            if len(examples) == wanted:
                break
    else:
        raise RuntimeError(f"only {len(examples)} distinct sentences after {wanted * 50} draws")
    n_train, n_dev, _ = sizes
    return {
        "train": examples[:n_train],
        "dev": examples[n_train:n_train + n_dev],
        "test": examples[n_train + n_dev:],
    }
