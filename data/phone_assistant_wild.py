"""Generator of the embedded `phone-assistant-wild` dataset: the phone assistant's requests as
real users type them, with dev/test phrasings and values that training never shows.

`phone-assistant` is saturated: every dev/test sentence follows a template seen in training. This
dataset keeps its conventions (Vietnamese, word-segmented the PhoBERT way with the syllables of
one word joined by `_`, BIO tags, an intent and a command per sentence) and adds what real
assistant and slot-filling data have.

Held-out phrasings. Every command lists its templates in two groups: the first is used in all
splits, the second (about a third of them, at least one for every command with three or more)
only in dev and test. Prefixes and suffixes ("ơi", "nhé", ...) are split the same way. Train
sentences use seen templates and seen fillers only. Each dev/test sentence is drawn as held-out
with probability 1/2: then either its template is a held-out one (when its command has any, 3 times
in 4) or its template is seen and its prefix or suffix is a held-out one. The other half is drawn
exactly like train. The written JSONL records carry this as `held_out_phrasing` (always false in
train), so scores can be split by it; `data/novelty.py` measures the same thing from the data alone
for any dataset (it also counts noise as novelty).

Held-out values. Every value list (names, places, apps, songs, message clauses, ...) and every
list of written forms (of times, dates, amounts, phone numbers, ...) reserves every fourth entry
(index 3, 7, 11, ...) for dev and test: train never draws it, dev and test draw from the whole
list. Composed values (a title and a name, several message clauses, a random clock time) are
new in dev/test for that reason too. ACTION words are closed-class verbs written in the templates
and are not reserved.

Imbalance. 25 intents with 1-4 commands each (every command in one intent); `call` takes 58% of
the draws, as calls dominate a phone assistant's traffic, and 15 intents have under 2%. 33 entity
types; the rare intents' types (AMOUNT, EMAIL, SOURCE_LANG, MEDIA_TYPE, ...) have only a few dozen
spans or fewer in train.

Role ambiguity. Some types share one value source and differ only by context: CONTACT, SENDER and
RECIPIENT (contacts); TIME, START_TIME and END_TIME (clock times); FROM_PLACE, TO_PLACE and
LOCATION (places); APP, SOURCE_APP and TARGET_APP (apps); SOURCE_LANG and TARGET_LANG
(languages). Templates say "từ X đến Y", "X ... sang Y" and also the swapped order ("đến Y ...
bắt_đầu từ X"), and single-role forms ("chỉ đường đến Y").

Span shapes. PHONE, EMAIL, ACTION, MODE, PLATFORM, MEDIA_TYPE, SOURCE_LANG and TARGET_LANG
values are always one token, so their `I-` tags never occur and stay in the invalid-label mask;
the other types run over several tokens, MESSAGE and NOTE up to about 30.

Noise, the same in every split: 20% of sentences without diacritics (`strip_diacritics`), 25%
in chat style (k/ko/hok for không, dc/đc for được, j for gì, mk/mik for mình, vk/ck, ...), 15%
all lowercase, 12% with one or two character typos (swapped, dropped or doubled letters), English
mixed in through templates and values (alarm, timer, app, wifi, volume, dark mode, ...). Noise
replaces a token by one token, so tags stay aligned. Sentences run from 3 to 40 tokens.

Everything is a function of the seed: one `random.Random(seed)`, lists only, no set iteration.
"""
from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from nlu_collapse.data.formats import SPLITS, Example
from nlu_collapse.data.phone_assistant import strip_diacritics

HELD_OUT_SHARE = 0.5          # of dev/test sentences drawn with a held-out phrasing
HELD_OUT_TEMPLATE_SHARE = 0.75  # of those, when the command has held-out templates: a new template (else a new filler)
RESERVED_EVERY = 4            # every 4th entry of a value list (index 3, 7, ...) is dev/test only
MIN_WORDS, MAX_WORDS = 3, 40
NO_DIACRITICS_SHARE, CHAT_STYLE_SHARE, LOWERCASE_SHARE, TYPO_SHARE = 0.20, 0.25, 0.15, 0.12

# intent -> (draws per mille, {command: (templates in every split, templates held out for dev/test)}).
# `{TYPE}` is an entity slot, `{TYPE@source}` one filled from another value source, `{ACTION:a|b}` a
# one-token ACTION chosen from the alternatives; every other word is tagged O.
INTENTS: dict[str, tuple[int, dict[str, tuple[list[str], list[str]]]]] = {
    "call": (580, {
        "call_contact": ([
            "{ACTION:gọi} {CONTACT}", "{ACTION:gọi} điện cho {CONTACT}", "{ACTION:gọi} cho {CONTACT} ngay",
            "{ACTION:call} {CONTACT}", "{ACTION:kết_nối} cuộc_gọi tới {CONTACT}", "{ACTION:gọi} lại cho {CONTACT}",
        ], [
            "mình cần nói_chuyện với {CONTACT} , {ACTION:gọi} đi", "{ACTION:gọi} thử {CONTACT} xem có nghe máy không",
            "{ACTION:liên_lạc} với {CONTACT} giúp",
        ]),
        "call_number": ([
            "{ACTION:gọi} số {PHONE}", "{ACTION:bấm} số {PHONE}", "{ACTION:gọi} {PHONE}", "{ACTION:call} số {PHONE}",
        ], [
            "{PHONE} , {ACTION:gọi} số này", "{ACTION:quay} số {PHONE} cho mình",
        ]),
        "video_call": ([
            "{ACTION:gọi} video cho {CONTACT} qua {PLATFORM}", "{ACTION:gọi} {PLATFORM} cho {CONTACT}",
            "{ACTION:gọi} video call cho {CONTACT}", "{ACTION:facetime} {CONTACT}",
        ], [
            "qua {PLATFORM} {ACTION:gọi} video {CONTACT}",
            "{ACTION:mở} {PLATFORM} rồi {ACTION:gọi} video cho {CONTACT}",
        ]),
        "call_back": ([
            "{ACTION:gọi} lại số vừa gọi", "{ACTION:gọi} lại cuộc_gọi nhỡ", "{ACTION:gọi} lại cho người vừa gọi",
        ], [
            "ai vừa gọi thì {ACTION:gọi} lại giúp mình",
        ]),
    }),
    "send-message": (70, {
        "send_sms": ([
            "{ACTION:nhắn} {RECIPIENT} là {MESSAGE}", "{ACTION:gửi} tin_nhắn cho {RECIPIENT} nội_dung {MESSAGE}",
            "{ACTION:nhắn_tin} cho số {PHONE} : {MESSAGE}", "{ACTION:soạn} tin cho {RECIPIENT} {MESSAGE}",
            "{ACTION:nhắn} {RECIPIENT} : {MESSAGE}", "{ACTION:text} {RECIPIENT} {MESSAGE}",
        ], [
            "{ACTION:báo} {RECIPIENT} rằng {MESSAGE}", "tin_nhắn cho {RECIPIENT} : {MESSAGE} , {ACTION:gửi} đi",
            "{ACTION:sms} {PHONE} nội_dung là {MESSAGE}",
        ]),
        "send_via_app": ([
            "{ACTION:nhắn} {PLATFORM} cho {RECIPIENT} là {MESSAGE}",
            "qua {PLATFORM} {ACTION:gửi} {RECIPIENT} : {MESSAGE}",
            "{ACTION:gửi} {PLATFORM} cho {RECIPIENT} nói {MESSAGE}",
        ], [
            "{ACTION:chat} với {RECIPIENT} trên {PLATFORM} : {MESSAGE}",
            "mở {PLATFORM} {ACTION:nhắn} cho {RECIPIENT} là {MESSAGE}",
        ]),
        "forward_message": ([
            "{ACTION:chuyển_tiếp} tin_nhắn của {SENDER} cho {RECIPIENT}",
            "{ACTION:chuyển_tiếp} tin_nhắn từ {SENDER} đến {RECIPIENT}",
            "{ACTION:forward} tin của {SENDER} sang {RECIPIENT}",
            "{ACTION:gửi} lại cho {RECIPIENT} tin của {SENDER}",
        ], [
            "{ACTION:gửi} cho {RECIPIENT} tin_nhắn mà {SENDER} vừa gửi",
            "{RECIPIENT} cần tin_nhắn của {SENDER} , {ACTION:chuyển_tiếp} qua",
        ]),
    }),
    "set-alarm": (45, {
        "alarm_once": ([
            "{ACTION:đặt} báo_thức lúc {TIME}", "{ACTION:đặt} báo_thức {TIME} {DATE}", "{ACTION:đặt} alarm {TIME}",
            "{DATE} {ACTION:gọi} mình dậy lúc {TIME}", "{ACTION:báo_thức} {TIME}",
            "{ACTION:set} alarm lúc {TIME} {DATE}",
        ], [
            "{TIME} {DATE} nhớ {ACTION:đánh_thức} mình", "mình muốn dậy lúc {TIME} , {ACTION:đặt} giúp báo_thức",
            "{ACTION:tạo} một báo_thức cho {DATE} lúc {TIME}",
        ]),
        "alarm_repeat": ([
            "{ACTION:đặt} báo_thức {TIME} {REPEAT}", "{REPEAT} {ACTION:báo_thức} lúc {TIME}",
            "{ACTION:đặt} alarm {REPEAT} lúc {TIME}",
        ], [
            "báo_thức {TIME} thì {ACTION:lặp_lại} {REPEAT}", "{REPEAT} đều {ACTION:đánh_thức} mình lúc {TIME}",
        ]),
        "cancel_alarm": ([
            "{ACTION:huỷ|hủy} báo_thức {TIME}", "{ACTION:tắt} báo_thức {DATE}", "{ACTION:xoá|xóa} alarm {TIME}",
        ], [
            "không cần báo_thức {TIME} nữa , {ACTION:bỏ} đi", "{ACTION:bỏ} hết báo_thức {DATE}",
        ]),
    }),
    "change-mode": (35, {
        "turn_on_mode": ([
            "{ACTION:bật} {MODE}", "{ACTION:bật} chế_độ {MODE}", "{ACTION:mở} {MODE}",
            "{ACTION:chuyển} sang chế_độ {MODE}", "{ACTION:bật} {MODE} lên",
        ], [
            "{MODE} , {ACTION:bật} lên", "cho máy vào chế_độ {MODE}",
        ]),
        "turn_off_mode": ([
            "{ACTION:tắt} {MODE}", "{ACTION:tắt} chế_độ {MODE} đi", "{MODE} {ACTION:tắt} giúp mình",
            "{ACTION:off} {MODE}",
        ], [
            "{ACTION:ngắt} kết_nối {MODE}", "đừng để {MODE} bật nữa , {ACTION:tắt} đi",
        ]),
        "schedule_mode": ([
            "{ACTION:bật} {MODE} từ {START_TIME} đến {END_TIME}",
            "{ACTION:bật} chế_độ {MODE} từ {START_TIME} tới {END_TIME}",
            "{ACTION:hẹn} {MODE} từ {START_TIME} đến {END_TIME} {REPEAT}", "{ACTION:bật} {MODE} cho tới {END_TIME}",
            "{ACTION:bật} {MODE} bắt_đầu lúc {START_TIME}",
        ], [
            "{ACTION:bật} {MODE} tới {END_TIME} , bắt_đầu từ {START_TIME}",
            "đến {END_TIME} thì {ACTION:tắt} {MODE} , bật từ {START_TIME}",
        ]),
    }),
    "open-app": (30, {
        "open_app": ([
            "{ACTION:mở} {APP}", "{ACTION:mở} ứng_dụng {APP}", "{ACTION:vào} {APP} cho mình", "{ACTION:open} {APP}",
            "{ACTION:khởi_động} app {APP}",
        ], [
            "{ACTION:mở} giúp cái app {APP}", "{APP} , {ACTION:mở} lên",
        ]),
        "close_app": ([
            "{ACTION:đóng|tắt} {APP}", "{ACTION:thoát} {APP} ra", "{ACTION:tắt} app {APP}",
        ], [
            "{APP} treo rồi , {ACTION:đóng} lại", "{ACTION:tắt} hẳn {APP} giùm",
        ]),
        "uninstall_app": ([
            "{ACTION:gỡ} {APP}", "{ACTION:xoá|xóa} ứng_dụng {APP}", "{ACTION:uninstall} {APP}",
        ], [
            "không dùng {APP} nữa , {ACTION:gỡ} đi",
        ]),
    }),
    "read-message": (25, {
        "read_latest": ([
            "{ACTION:đọc} tin_nhắn mới", "{ACTION:đọc} tin_nhắn mới nhất", "có tin_nhắn mới không",
            "{ACTION:kiểm_tra} tin_nhắn",
        ], [
            "ai vừa nhắn cho mình thế", "{ACTION:đọc} to tin_nhắn vừa tới",
        ]),
        "read_from_sender": ([
            "{ACTION:đọc} tin_nhắn của {SENDER}", "{ACTION:đọc} tin_nhắn từ {SENDER}", "{SENDER} nhắn gì vậy",
            "{ACTION:mở} tin_nhắn {SENDER} gửi", "{ACTION:đọc} tin_nhắn {PLATFORM} của {SENDER}",
        ], [
            "tin cuối_cùng {SENDER} gửi là gì", "có tin nào từ {SENDER} không , {ACTION:đọc} cho mình",
        ]),
    }),
    "adjust-setting": (25, {
        "set_level": ([
            "{ACTION:chỉnh} {SETTING} lên {LEVEL}", "{ACTION:để} {SETTING} ở {LEVEL}", "{ACTION:set} {SETTING} {LEVEL}",
        ], [
            "{SETTING} để {LEVEL} thôi", "{SETTING} {ACTION:chỉnh} về {LEVEL}",
        ]),
        "increase_setting": ([
            "{ACTION:tăng} {SETTING}", "{ACTION:tăng} {SETTING} lên", "{ACTION:tăng} {SETTING} thêm chút",
        ], [
            "{ACTION:vặn} {SETTING} to lên",
        ]),
        "decrease_setting": ([
            "{ACTION:giảm} {SETTING}", "{ACTION:giảm} {SETTING} xuống", "{ACTION:hạ} {SETTING} xuống {LEVEL}",
        ], [
            "{SETTING} hơi cao , {ACTION:giảm} bớt", "{SETTING} to quá , {ACTION:giảm} xuống {LEVEL}",
        ]),
        "toggle_setting": ([
            "{ACTION:bật} {SETTING@toggle}", "{ACTION:tắt} {SETTING@toggle}", "{ACTION:chuyển} sang {SETTING@toggle}",
        ], [
            "{ACTION:đổi} qua {SETTING@toggle} đi", "{SETTING@toggle} , {ACTION:bật} lên",
        ]),
    }),
    "play-music": (22, {
        "play_song": ([
            "{ACTION:mở} bài {SONG}", "{ACTION:phát} bài {SONG} của {ARTIST}", "{ACTION:bật} nhạc {SONG}",
            "{ACTION:play} {SONG}", "{ACTION:mở} {SONG} trên {APP@music}",
        ], [
            "cho mình nghe {SONG} đi", "bài {SONG} của {ARTIST} , {ACTION:mở} lên",
        ]),
        "play_artist": ([
            "{ACTION:mở} nhạc {ARTIST}", "{ACTION:phát} nhạc của {ARTIST}", "{ACTION:bật} playlist {ARTIST}",
        ], [
            "muốn nghe {ARTIST} quá",
        ]),
        "control_playback": ([
            "{ACTION:dừng} nhạc", "{ACTION:chuyển} bài", "{ACTION:next} bài", "{ACTION:tạm_dừng} bài này",
        ], [
            "bài này chán quá , {ACTION:qua} bài khác",
        ]),
    }),
    "timer": (20, {
        "start_timer": ([
            "{ACTION:hẹn} giờ {DURATION}", "{ACTION:đếm_ngược} {DURATION}", "{ACTION:đặt} timer {DURATION}",
            "{ACTION:bấm} giờ {DURATION} cho mình",
        ], [
            "{DURATION} nữa thì {ACTION:nhắc} mình", "{ACTION:set} timer {DURATION} để luộc trứng",
        ]),
        "stop_timer": ([
            "{ACTION:dừng} hẹn giờ", "{ACTION:tắt} timer", "{ACTION:huỷ|hủy} đếm_ngược",
        ], [
            "thôi không cần hẹn giờ nữa", "{ACTION:huỷ} cái timer vừa đặt",
        ]),
    }),
    "navigation": (18, {
        "directions": ([
            "{ACTION:chỉ} đường từ {FROM_PLACE} đến {TO_PLACE}", "{ACTION:chỉ} đường đến {TO_PLACE}",
            "đường từ {FROM_PLACE} tới {TO_PLACE} đi sao", "{ACTION:dẫn} đường tới {TO_PLACE}",
            "{ACTION:tìm} đường từ {FROM_PLACE} về {TO_PLACE}", "{ACTION:navigate} tới {TO_PLACE}",
            "đi {TO_PLACE} xuất_phát từ {FROM_PLACE}",
        ], [
            "muốn đi {TO_PLACE} từ {FROM_PLACE} thì đi đường nào",
            "đang ở {FROM_PLACE} , {ACTION:chỉ} đường về {TO_PLACE}",
            "{TO_PLACE} cách {FROM_PLACE} bao xa",
        ]),
        "traffic_check": ([
            "đường đến {TO_PLACE} có kẹt xe không", "{ACTION:xem} tình_hình giao_thông đến {TO_PLACE}",
            "từ {FROM_PLACE} đến {TO_PLACE} có tắc đường không",
        ], [
            "đi {TO_PLACE} giờ này có tắc không", "{ACTION:check} giao_thông từ {FROM_PLACE} tới {TO_PLACE}",
        ]),
    }),
    "calendar": (16, {
        "create_event": ([
            "{ACTION:tạo} lịch {EVENT} {DATE} lúc {START_TIME}",
            "{ACTION:thêm} {EVENT} vào lịch {DATE} từ {START_TIME} đến {END_TIME}",
            "{ACTION:đặt} lịch {EVENT} từ {START_TIME} tới {END_TIME} {DATE}", "{ACTION:lên_lịch} {EVENT} {DATE}",
            "{DATE} có {EVENT} từ {START_TIME} đến {END_TIME} , {ACTION:ghi} vào lịch",
            "{ACTION:đặt} lịch {EVENT} {DATE} đến {END_TIME} , bắt_đầu từ {START_TIME}",
        ], [
            "{ACTION:book} lịch {EVENT} kết_thúc lúc {END_TIME} , bắt_đầu lúc {START_TIME} {DATE}",
            "{EVENT} {DATE} kéo_dài đến {END_TIME} , {ACTION:thêm} vào lịch giúp",
        ]),
        "query_schedule": ([
            "{DATE} mình có lịch gì", "{ACTION:xem} lịch {DATE}", "{ACTION:kiểm_tra} lịch {DATE}",
        ], [
            "lịch {DATE} thế_nào",
        ]),
        "cancel_event": ([
            "{ACTION:huỷ|hủy} lịch {EVENT} {DATE}", "{ACTION:xoá|xóa} {EVENT} khỏi lịch",
        ], []),
    }),
    "weather": (15, {
        "weather_now": ([
            "thời_tiết {LOCATION} thế_nào", "{LOCATION} có mưa không", "nhiệt_độ ở {LOCATION} bao_nhiêu",
        ], [
            "ngoài {LOCATION} đang nắng hay mưa", "weather {LOCATION} now",
        ]),
        "weather_forecast": ([
            "{DATE} {LOCATION} có mưa không", "dự_báo thời_tiết {LOCATION} {DATE}", "{DATE} trời thế_nào",
        ], [
            "{LOCATION} {DATE} có nên mang áo_mưa không", "{DATE} ở {LOCATION} nắng không",
        ]),
    }),
    "search-contacts": (14, {
        "search_by_name": ([
            "{ACTION:tìm} {CONTACT} trong danh_bạ", "số của {CONTACT} là bao_nhiêu",
            "{ACTION:tìm} số điện_thoại của {CONTACT}", "{ACTION:tra} số {CONTACT}",
        ], [
            "cho mình xin số {CONTACT}", "{CONTACT} số mấy",
        ]),
        "search_by_number": ([
            "số {PHONE} là của ai", "{ACTION:tra} số {PHONE}", "{ACTION:tìm} chủ thuê_bao {PHONE}",
        ], [
            "{PHONE} là số ai vậy",
        ]),
    }),
    "add-contacts": (12, {
        "save_new_contact": ([
            "{ACTION:lưu} số {PHONE} với tên {CONTACT}", "{ACTION:thêm} {CONTACT} số {PHONE} vào danh_bạ",
            "{ACTION:tạo} liên_hệ mới tên {CONTACT} số {PHONE}",
        ], [
            "số {PHONE} là của {CONTACT} , {ACTION:lưu} lại", "{ACTION:save} {PHONE} tên {CONTACT}",
        ]),
        "add_email": ([
            "{ACTION:thêm} email {EMAIL} cho {CONTACT}", "{ACTION:lưu} mail {EMAIL} vào liên_hệ {CONTACT}",
        ], [
            "email của {CONTACT} là {EMAIL} , {ACTION:cập_nhật} đi",
        ]),
    }),
    "camera": (10, {
        "take_photo": ([
            "{ACTION:chụp} ảnh", "{ACTION:chụp} ảnh selfie", "{ACTION:mở} camera {ACTION:chụp} hình",
            "{ACTION:chụp} màn_hình",
        ], [
            "{ACTION:selfie} một tấm",
        ]),
        "record_video": ([
            "{ACTION:quay} video", "{ACTION:quay} phim {DURATION}", "{ACTION:record} video",
        ], [
            "{ACTION:bật} camera {ACTION:quay} lại", "{ACTION:quay} lại {DURATION} thôi",
        ]),
    }),
    "web-search": (10, {
        "search_web": ([
            "{ACTION:tìm} {QUERY}", "{ACTION:tìm_kiếm} {QUERY} trên google", "{ACTION:search} {QUERY}",
            "{ACTION:tra} google {QUERY}",
        ], [
            "google giúp mình {QUERY}", "{QUERY} là sao vậy",
        ]),
        "search_video": ([
            "{ACTION:tìm} video {QUERY} trên youtube", "{ACTION:mở} youtube {ACTION:tìm} {QUERY}",
        ], []),
    }),
    "note": (9, {
        "create_note": ([
            "{ACTION:ghi_chú} {NOTE}", "{ACTION:ghi} lại : {NOTE}", "{ACTION:tạo} ghi_chú {NOTE}",
            "{ACTION:note} {NOTE}",
        ], [
            "nhớ giùm mình là {NOTE}", "{ACTION:thêm} vào ghi_chú : {NOTE}",
        ]),
        "read_notes": ([
            "{ACTION:đọc} ghi_chú", "{ACTION:mở} ghi_chú gần nhất",
        ], []),
        "set_reminder": ([
            "{ACTION:nhắc} mình {NOTE} lúc {TIME}", "{ACTION:nhắc} mình {DATE} {NOTE}",
            "{TIME} {ACTION:nhắc} mình {NOTE}",
        ], [
            "đừng để mình quên {NOTE} {DATE}", "{DATE} lúc {TIME} {ACTION:nhắc} mình {NOTE}",
        ]),
    }),
    "block-contacts": (8, {
        "block_number": ([
            "{ACTION:chặn} số {PHONE}", "{ACTION:chặn} cuộc_gọi từ {CONTACT}", "{ACTION:block} {CONTACT}",
        ], [
            "đừng cho {CONTACT} gọi tới nữa , {ACTION:chặn} luôn", "{PHONE} gọi quảng_cáo hoài , {ACTION:chặn} đi",
        ]),
        "unblock_number": ([
            "{ACTION:bỏ_chặn} số {PHONE}", "{ACTION:bỏ_chặn} {CONTACT}", "{ACTION:unblock} {CONTACT}",
        ], [
            "cho {CONTACT} ra khỏi danh_sách đen",
        ]),
    }),
    "device-info": (7, {
        "check_battery": ([
            "pin còn bao_nhiêu", "{ACTION:kiểm_tra} pin", "còn bao_nhiêu phần_trăm pin", "battery còn bao_nhiêu",
        ], [
            "máy sắp hết pin chưa",
        ]),
        "check_storage": ([
            "bộ_nhớ còn trống bao_nhiêu", "{ACTION:kiểm_tra} dung_lượng", "storage còn bao_nhiêu",
        ], [
            "{ACTION:xem} máy còn bao_nhiêu GB",
        ]),
    }),
    "delete-contacts": (6, {
        "delete_contact": ([
            "{ACTION:xoá|xóa} {CONTACT} khỏi danh_bạ", "{ACTION:xoá|xóa} liên_hệ {CONTACT}",
            "{ACTION:delete} {CONTACT}",
        ], [
            "không cần số {CONTACT} nữa , {ACTION:xoá} đi",
        ]),
        "delete_number": ([
            "{ACTION:xoá|xóa} số {PHONE}", "{ACTION:xoá|xóa} số {PHONE} của {CONTACT}",
        ], []),
    }),
    "book-ride": (6, {
        "book_ride": ([
            "{ACTION:đặt} xe từ {FROM_PLACE} đến {TO_PLACE}", "{ACTION:gọi} {APP@ride} đến {TO_PLACE}",
            "{ACTION:đặt} {APP@ride} đi {TO_PLACE}", "{ACTION:book} xe đi {TO_PLACE}",
        ], [
            "đón mình ở {FROM_PLACE} rồi chở tới {TO_PLACE}",
            "{ACTION:gọi} xe về {TO_PLACE} , mình đang ở {FROM_PLACE}",
        ]),
    }),
    "share-file": (5, {
        "share_media": ([
            "{ACTION:chia_sẻ} {MEDIA_TYPE} từ {SOURCE_APP} sang {TARGET_APP}",
            "{ACTION:gửi} {MEDIA_TYPE} trong {SOURCE_APP} qua {TARGET_APP}",
            "{ACTION:share} {MEDIA_TYPE} này lên {TARGET_APP}",
            "{ACTION:gửi} qua {TARGET_APP} {MEDIA_TYPE} từ {SOURCE_APP}",
        ], [
            "{ACTION:đăng} lên {TARGET_APP} cái {MEDIA_TYPE} trong {SOURCE_APP}",
        ]),
        "transfer_data": ([
            "{ACTION:chuyển} {MEDIA_TYPE} từ {SOURCE_APP} sang {TARGET_APP}",
            "{ACTION:sao_chép} {MEDIA_TYPE} từ {SOURCE_APP} qua {TARGET_APP}",
            "{ACTION:copy} {MEDIA_TYPE} từ {SOURCE_APP} vào {TARGET_APP}",
        ], [
            "{TARGET_APP} cần {MEDIA_TYPE} bên {SOURCE_APP} , {ACTION:chuyển} qua",
        ]),
    }),
    "bank-transfer": (4, {
        "transfer_money": ([
            "{ACTION:chuyển} {AMOUNT} cho {RECIPIENT}", "{ACTION:chuyển_khoản} cho {RECIPIENT} {AMOUNT}",
            "{ACTION:gửi} {AMOUNT} qua {APP@bank} cho {RECIPIENT}",
        ], [
            "{RECIPIENT} cần {AMOUNT} , {ACTION:chuyển} giúp", "{ACTION:bank} cho {RECIPIENT} {AMOUNT} qua {APP@bank}",
        ]),
        "check_balance": ([
            "tài_khoản còn bao_nhiêu tiền", "{ACTION:kiểm_tra} số_dư", "{ACTION:xem} số_dư {APP@bank}",
        ], [
            "còn bao_nhiêu tiền trong {APP@bank}",
        ]),
    }),
    "translate": (4, {
        "translate_text": ([
            "{ACTION:dịch} {TEXT} sang {TARGET_LANG}", "{ACTION:dịch} từ {SOURCE_LANG} sang {TARGET_LANG} : {TEXT}",
            "{TEXT} {TARGET_LANG} là gì", "{ACTION:translate} {TEXT} sang {TARGET_LANG}",
        ], [
            "{TARGET_LANG} của {TEXT} nói thế_nào", "câu {TEXT} là {SOURCE_LANG} , {ACTION:dịch} ra {TARGET_LANG}",
        ]),
    }),
    "send-email": (4, {
        "send_email": ([
            "{ACTION:gửi} email cho {RECIPIENT} nội_dung {MESSAGE}", "{ACTION:gửi} mail tới {EMAIL} : {MESSAGE}",
            "{ACTION:soạn} email cho {EMAIL} là {MESSAGE}",
        ], [
            "{ACTION:email} {RECIPIENT} rằng {MESSAGE}", "mail cho {EMAIL} : {MESSAGE} , {ACTION:gửi} liền",
        ]),
        "read_email": ([
            "{ACTION:đọc} email mới", "{ACTION:kiểm_tra} hộp thư", "{ACTION:đọc} mail của {SENDER}",
        ], [
            "có mail nào từ {SENDER} không",
        ]),
    }),
}

# Fillers around the request: (in every split, held out for dev/test). "" = none.
PREFIXES = (["", "", "", "", "", "ơi", "trợ_lý ơi", "làm_ơn", "vui_lòng", "bạn ơi", "hey", "giúp mình",
             "nhờ bạn", "cho mình", "này", "ok google"],
            ["alo", "ê", "em ơi", "mình muốn", "bạn có_thể", "hey siri"])
SUFFIXES = (["", "", "", "", "", "nhé", "nha", "giúp mình", "với", "đi", "giùm tôi", "cảm_ơn", "được không",
             "liền nhé", "thanks", "pls"],
            ["giúp em với", "nhanh lên", "được chứ", "luôn nha", "thank you", "hộ mình cái"])

# Value lists. Every 4th entry (index 3, 7, ...) is reserved for dev/test (see `Pool`).
TITLES = ["anh", "chị", "em", "cô", "chú", "bác", "ông", "bà", "thầy", "sếp", "dì", "cậu"]
NAMES = ["Minh", "Lan", "Hùng", "Hoa", "Tuấn", "Trang", "Nam", "Hằng", "Dũng", "Linh", "Phương", "Quân",
         "Thảo", "Long", "Mai", "Hiếu", "Ngọc", "Sơn", "Vy", "Khoa", "Hà", "Bình", "Châu", "Đức", "Thu", "Yến",
         "Phúc", "Tâm", "Huy", "Nhung", "Khánh", "Duyên", "Tùng", "Loan", "Thắng", "Quyên"]
FULL_NAMES = ["Nguyễn_Văn_An", "Trần_Thị_Bích", "Lê_Hoàng_Nam", "Phạm_Minh_Tuấn", "Võ_Thị_Sáu",
              "Đặng_Quốc_Bảo", "Bùi_Thu_Hà", "Hoàng_Anh_Dũng", "Đỗ_Thanh_Tâm", "Ngô_Bảo_Châu",
              "Trịnh_Công_Sơn", "Huỳnh_Như"]
RELATIONS = ["mẹ", "bố", "vợ", "chồng", "ông_nội", "bà_ngoại", "con_gái", "em_trai", "ba", "má", "anh_hai",
             "chị_hai", "con_trai", "bà_nội", "mẹ vợ", "em gái"]
DESCRIPTORS = ["kế_toán", "công_ty", "hàng_xóm", "lớp_trưởng", "giao_hàng", "phòng nhân_sự", "shipper",
               "bảo_vệ", "chủ nhà", "sửa điện", "team marketing", "khách_hàng"]
MODES = ["wifi", "bluetooth", "4g", "5g", "máy_bay", "im_lặng", "rung", "tiết_kiệm_pin", "không_làm_phiền",
         "định_vị", "hotspot", "nfc", "gps", "airdrop", "3g", "wi-fi"]
PLATFORMS = ["zalo", "messenger", "viber", "telegram", "facebook", "whatsapp", "skype", "facetime", "zoom",
             "instagram"]
APPS = ["youtube", "máy_ảnh", "google maps", "zing mp3", "tiktok", "spotify", "shopee", "grab", "lịch",
        "đồng_hồ", "settings", "cài_đặt", "thư_viện ảnh", "máy_tính", "ghi_chú", "chrome", "gmail", "zalo",
        "messenger", "lazada", "netflix", "google drive", "camera", "ví momo", "facebook", "instagram", "files",
        "app store"]
RIDE_APPS = ["grab", "be", "gojek", "xanh sm", "taxi mai_linh", "grab bike"]
MUSIC_APPS = ["spotify", "zing mp3", "youtube music", "nhaccuatui", "apple music"]
BANK_APPS = ["ví momo", "vietcombank", "techcombank", "zalopay", "mb bank", "vnpay", "tpbank"]
MEDIA_TYPES = ["ảnh", "video", "file", "tài_liệu", "ghi_âm", "danh_bạ", "hình", "clip", "pdf"]
LANGUAGES = ["tiếng_anh", "tiếng_việt", "tiếng_nhật", "tiếng_hàn", "tiếng_trung", "tiếng_pháp", "english",
             "tiếng_đức", "tiếng_thái"]
PLACES = ["Hà_Nội", "Đà_Nẵng", "sân_bay Tân_Sơn_Nhất", "nhà", "công_ty", "chợ Bến_Thành", "hồ Gươm",
          "Quận 1", "trường", "bệnh_viện Bạch_Mai", "Vincom Bà_Triệu", "bến xe Mỹ_Đình", "Landmark 81",
          "Vũng_Tàu", "Hội_An", "Cần_Thơ", "Aeon Mall Tân_Phú", "nhà ngoại", "sân_bay Nội_Bài", "Đà_Lạt",
          "ga Sài_Gòn", "Hải_Phòng", "phố đi bộ Nguyễn_Huệ", "Nha_Trang", "Times City", "Thủ_Đức",
          "cây xăng gần nhất", "Huế"]
SETTINGS = ["độ sáng", "âm_lượng", "volume", "brightness", "cỡ chữ", "font size", "âm_lượng nhạc chuông",
            "độ sáng màn_hình", "âm_lượng media", "thời_gian khoá màn_hình", "tốc_độ cuộn", "độ nhạy cảm_ứng"]
TOGGLE_SETTINGS = ["dark mode", "chế_độ tối", "tự_động xoay màn_hình", "auto rotate", "rung khi chạm",
                   "night shift", "độ sáng tự_động", "chế_độ một tay", "auto brightness", "bàn_phím rung",
                   "lọc ánh_sáng xanh", "hiển_thị phần_trăm pin"]
SONGS = ["lạc trôi", "nơi này có anh", "see tình", "hãy trao cho anh", "có chắc yêu là đây",
         "bước qua mùa cô_đơn", "đi về nhà", "shape of you", "em của ngày hôm_qua", "chạy ngay đi",
         "waiting for you", "ngày đầu_tiên", "chúng_ta của hiện_tại", "bông hoa đẹp nhất",
         "tháng tư là lời nói dối của em",
         "blinding lights", "mang tiền về cho mẹ", "cắt đôi nỗi sầu", "anh đã quen với cô_đơn", "yêu 5"]
ARTISTS = ["Sơn_Tùng", "Đen_Vâu", "Mỹ_Tâm", "Hoàng_Thuỳ_Linh", "Taylor Swift", "BTS", "Jack", "Hà_Anh_Tuấn",
           "Vũ", "Bích_Phương", "Ed Sheeran", "Binz", "Min", "Noo_Phước_Thịnh", "Blackpink", "Tăng_Duy_Tân"]
EVENTS = ["họp nhóm", "khám răng", "sinh_nhật mẹ", "đón con", "meeting với khách_hàng", "học tiếng_anh",
          "đi gym", "họp phụ_huynh", "phỏng_vấn", "ăn tối với gia_đình", "deadline báo_cáo", "tiệc công_ty",
          "đá bóng", "khám sức_khoẻ", "call với đối_tác", "đám_cưới Hùng"]
DATES = ["ngày_mai", "hôm_nay", "thứ_hai tuần sau", "chủ_nhật", "tối nay", "sáng mai", "cuối_tuần này",
         "thứ_bảy", "ngày kia", "thứ_tư", "tuần sau", "chiều mai"]
REPEATS = ["mỗi ngày", "hằng_ngày", "các ngày trong tuần", "thứ_hai đến thứ_sáu", "mỗi sáng", "cuối_tuần",
           "hai ngày một lần", "every day", "mỗi tối", "thứ_hai hằng tuần", "trừ chủ_nhật", "ngày_thường"]
PERIODS = ["sáng", "trưa", "chiều", "tối", "đêm"]
MESSAGE_CLAUSES = [
    "anh về muộn nhé", "em đang họp gọi lại sau", "tối nay ăn cơm nhà không", "nhớ mua sữa",
    "chúc mừng sinh_nhật", "mai mấy giờ họp", "đến nơi chưa", "con tan học rồi", "gửi mình file báo_cáo",
    "cảm_ơn nhiều nha", "đợi em 5 phút", "đang kẹt xe", "mình tới cổng rồi", "họp dời sang chiều",
    "nhớ uống thuốc", "ok", "chuyển khoản rồi nhé", "đi ăn trưa không",
    "hôm_nay em không về ăn cơm đâu mọi người cứ ăn trước đi", "sếp bảo nộp báo_cáo trước 5 giờ chiều nay",
    "nhớ đón con ở cổng sau trường lúc 4 rưỡi", "mình gửi lại link tài_liệu trong nhóm rồi đó",
    "tối nay có đá bóng ở sân cũ không", "đừng quên mang theo chứng_minh thư khi đi làm thủ_tục",
    "mẹ ơi con đến nơi rồi", "anh nhận được hàng chưa", "không sao đâu", "được rồi cảm_ơn",
    "đang bận lát nói", "mai nghỉ học nha", "gửi mình số tài_khoản với", "bao_giờ xong thì báo mình",
    "hẹn gặp ở quán cà_phê cũ", "tiền điện tháng này bao_nhiêu vậy", "ok chốt vậy đi", "nhớ khoá cửa",
]
NOTE_ITEMS = ["mua sữa", "trứng", "bánh_mì", "gọi thợ sửa điều_hoà", "đóng tiền nhà", "nộp thuế",
              "mật_khẩu wifi là 12345678", "mua quà sinh_nhật cho vợ", "đặt vé máy_bay đi Đà_Nẵng",
              "trả sách thư_viện", "rau muống", "thịt bò", "họp với khách lúc 3 giờ", "đổi dầu xe",
              "gửi hồ_sơ cho phòng nhân_sự trước thứ_sáu", "tưới cây", "mua pin", "gia_hạn bảo_hiểm xe",
              "đi khám mắt", "lấy đồ giặt", "ý_tưởng cho bài thuyết_trình tuần sau", "nước mắm", "giấy vệ_sinh",
              "đăng_ký học bơi cho con"]
TEXTS = ["cảm_ơn bạn rất nhiều", "nhà vệ_sinh ở đâu", "how much is this", "tôi bị dị_ứng với đậu_phộng",
         "xin chào", "bao_nhiêu tiền", "where is the station", "tôi không hiểu", "rất vui được gặp bạn",
         "good morning", "cho tôi xin hoá_đơn", "tôi bị lạc đường"]
QUERIES = ["giá vàng hôm_nay", "cách nấu phở bò", "kết_quả bóng_đá tối qua", "iphone 15 giá bao_nhiêu",
           "tỷ_giá đô hôm_nay", "quán ăn ngon gần đây", "lịch chiếu phim cgv", "cách làm bánh flan",
           "triệu_chứng sốt xuất_huyết", "giá xăng hôm_nay", "lịch thi đấu việt_nam", "review xe vinfast",
           "cách đổi mật_khẩu zalo", "thủ_tục làm hộ_chiếu", "nhà_thuốc gần nhất", "chatgpt là gì"]
EMAIL_DOMAINS = ["gmail.com", "yahoo.com", "outlook.com", "fpt.vn", "hust.edu.vn", "company.vn"]

# Chat-style spellings: a word -> its abbreviations (one token each, so tags stay aligned).
ABBREVIATIONS = {
    "không": ["k", "ko", "hok", "kh", "hông"], "được": ["dc", "đc", "đk"], "gì": ["j", "gi"],
    "mình": ["mk", "mik", "m"], "bạn": ["bn", "b"], "nói": ["ns"], "nhắn_tin": ["nt", "nhắn"],
    "ok": ["oke", "okie", "oki"], "với": ["vs", "vơi"], "rồi": ["r", "rùi"], "vậy": ["v", "z", "zậy"],
    "cảm_ơn": ["cám_ơn", "tks", "thanks"], "tin_nhắn": ["tn", "tin"], "điện_thoại": ["đt", "dt"],
    "anh": ["a"], "em": ["e"], "chị": ["c"], "vợ": ["vk"], "chồng": ["ck"], "biết": ["bít"],
    "thế_nào": ["ntn"], "trước": ["trc"], "bao_nhiêu": ["bnhiu", "bn"], "nhé": ["nhe", "nhá"],
    "giúp": ["júp"], "yêu": ["iu"],
}


@dataclass(frozen=True)
class Pool:
    """Which entries of a value list a sentence may draw: train only the unreserved ones, dev/test all."""

    all_values: bool

    def usable(self, values: list) -> list:
        if self.all_values:
            return values
        return [v for i, v in enumerate(values) if i % RESERVED_EVERY != RESERVED_EVERY - 1]

    def pick(self, rng: random.Random, values: list[str]) -> str:
        return rng.choice(self.usable(values))

    def form(self, rng: random.Random, forms: list[Callable[[random.Random], str]]) -> str:
        """One value in one of several written forms; forms are reserved like values."""
        return rng.choice(self.usable(forms))(rng)


def reserved(values: list) -> list:
    """The entries of a value list that only dev and test ever draw."""
    return values[RESERVED_EVERY - 1::RESERVED_EVERY]


def _digits(rng: random.Random, n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def _phone(rng: random.Random, pool: Pool) -> str:
    """A Vietnamese phone number in one of the ways people type it; always one token."""
    local = rng.choice(["09", "03", "07", "08", "05"]) + _digits(rng, 8)
    return pool.form(rng, [
        lambda r: local,
        lambda r: f"{local[:4]}.{local[4:7]}.{local[7:]}",
        lambda r: f"{local[:4]}-{local[4:7]}-{local[7:]}",
        lambda r: "+84" + local[1:],
        lambda r: f"(028){r.randint(3000_0000, 3999_9999)}",
        lambda r: "1900" + _digits(r, 4),
        lambda r: f"{local[:3]}.{local[3:6]}.{local[6:]}",
        lambda r: "84" + local[1:],
    ])


def _contact(rng: random.Random, pool: Pool) -> str:
    """A person as users name them: a title and a name, a full name, a relation, a name with who they are."""
    return pool.form(rng, [  # a title and a name twice: the commonest
        lambda r: f"{pool.pick(r, TITLES)} {pool.pick(r, NAMES)}",
        lambda r: pool.pick(r, NAMES),
        lambda r: pool.pick(r, RELATIONS),
        lambda r: f"{pool.pick(r, TITLES)} {pool.pick(r, NAMES)} {pool.pick(r, DESCRIPTORS)}",
        lambda r: pool.pick(r, FULL_NAMES),
        lambda r: f"{pool.pick(r, TITLES)} {pool.pick(r, NAMES)}",
        lambda r: f"{pool.pick(r, NAMES)} {pool.pick(r, DESCRIPTORS)}",
    ])


def _time(rng: random.Random, pool: Pool) -> str:
    hour, minute = rng.randint(1, 12), rng.choice([5, 10, 15, 20, 30, 40, 45, 50])
    period = pool.pick(rng, PERIODS)
    return pool.form(rng, [
        lambda r: f"{hour} giờ {period}",
        lambda r: f"{hour} giờ {minute} phút",
        lambda r: f"{hour}h{minute:02d}",
        lambda r: f"{hour} giờ kém {minute % 20 or 15}",
        lambda r: f"{hour}:{minute:02d}",
        lambda r: f"{hour} giờ rưỡi {period}",
        lambda r: f"{hour + 11}h",
        lambda r: f"{hour}{r.choice(['am', 'pm'])}",
        lambda r: f"{period} {hour} giờ",
        lambda r: f"{hour} giờ",
    ])


def _date(rng: random.Random, pool: Pool) -> str:
    day, month = rng.randint(1, 28), rng.randint(1, 12)
    return pool.form(rng, [  # named days twice: they are the commonest
        lambda r: pool.pick(r, DATES),
        lambda r: f"ngày {day} tháng {month}",
        lambda r: pool.pick(r, DATES),
        lambda r: f"{day}/{month}",
        lambda r: f"mùng {min(day, 10)}",
    ])


def _duration(rng: random.Random, pool: Pool) -> str:
    n = rng.choice([1, 2, 3, 5, 10, 15, 20, 25, 30, 45, 90])
    return pool.form(rng, [
        lambda r: f"{n} phút", lambda r: f"{n} giây", lambda r: f"{r.randint(1, 3)} tiếng",
        lambda r: "nửa tiếng", lambda r: f"{r.randint(1, 2)} tiếng {n % 60 or 30} phút", lambda r: f"{n} mins",
        lambda r: "1 tiếng rưỡi", lambda r: f"{n}p",
    ])


def _level(rng: random.Random, pool: Pool) -> str:
    percent = rng.choice(range(10, 101, 10))
    return pool.form(rng, [
        lambda r: f"{percent}%", lambda r: f"mức {r.randint(1, 10)}", lambda r: "tối_đa", lambda r: f"{percent} %",
        lambda r: "thấp nhất", lambda r: "max", lambda r: "một nửa", lambda r: f"{percent} phần_trăm",
    ])


def _amount(rng: random.Random, pool: Pool) -> str:
    thousands, millions = rng.choice([50, 100, 150, 200, 300, 500, 800]), rng.randint(1, 20)
    return pool.form(rng, [
        lambda r: f"{thousands}k", lambda r: f"{thousands} nghìn", lambda r: f"{millions} triệu",
        lambda r: f"{millions}tr{r.randint(1, 9)}", lambda r: f"{thousands}.000 đồng", lambda r: f"{thousands} ngàn",
        lambda r: f"{thousands}.000đ", lambda r: f"{millions} củ",
    ])


def _email(rng: random.Random, pool: Pool) -> str:
    """One token: a name without diacritics, maybe a number, and a domain."""
    user = strip_diacritics(pool.pick(rng, NAMES)).lower()
    return pool.form(rng, [
        lambda r: f"{user}{r.randint(80, 99)}@{pool.pick(r, EMAIL_DOMAINS)}",
        lambda r: f"{user}.{strip_diacritics(pool.pick(r, NAMES)).lower()}@{pool.pick(r, EMAIL_DOMAINS)}",
        lambda r: f"{user}@{pool.pick(r, EMAIL_DOMAINS)}",
        lambda r: f"{user}_{r.randint(1, 999)}@{pool.pick(r, EMAIL_DOMAINS)}",
    ])


def _joined(items: list[str], rng: random.Random, pool: Pool, weights: list[int]) -> str:
    """1..len(weights) distinct entries joined by commas: how long messages and lists are written."""
    count = rng.choices(range(1, len(weights) + 1), weights=weights)[0]
    return " , ".join(rng.sample(pool.usable(items), count))


def _listed(values: list[str]) -> Callable[[random.Random, Pool], str]:
    return lambda rng, pool: pool.pick(rng, values)


# Value sources. Types that share a source share its values (role ambiguity): see ROLE_SOURCE.
SOURCES: dict[str, Callable[[random.Random, Pool], str]] = {
    "phone": _phone, "contact": _contact, "time": _time, "date": _date, "duration": _duration,
    "level": _level, "amount": _amount, "email": _email,
    "message": lambda rng, pool: _joined(MESSAGE_CLAUSES, rng, pool, [50, 28, 15, 7]),
    "note": lambda rng, pool: _joined(NOTE_ITEMS, rng, pool, [40, 20, 15, 15, 10]),
    "mode": _listed(MODES), "platform": _listed(PLATFORMS), "app": _listed(APPS), "ride": _listed(RIDE_APPS),
    "music": _listed(MUSIC_APPS), "bank": _listed(BANK_APPS), "media": _listed(MEDIA_TYPES),
    "language": _listed(LANGUAGES), "place": _listed(PLACES), "setting": _listed(SETTINGS),
    "toggle": _listed(TOGGLE_SETTINGS), "song": _listed(SONGS), "artist": _listed(ARTISTS),
    "event": _listed(EVENTS), "repeat": _listed(REPEATS), "text": _listed(TEXTS), "query": _listed(QUERIES),
}
ROLE_SOURCE = {
    "CONTACT": "contact", "SENDER": "contact", "RECIPIENT": "contact",
    "TIME": "time", "START_TIME": "time", "END_TIME": "time",
    "FROM_PLACE": "place", "TO_PLACE": "place", "LOCATION": "place",
    "APP": "app", "SOURCE_APP": "app", "TARGET_APP": "app",
    "SOURCE_LANG": "language", "TARGET_LANG": "language",
    "PHONE": "phone", "EMAIL": "email", "DATE": "date", "DURATION": "duration", "REPEAT": "repeat",
    "LEVEL": "level", "AMOUNT": "amount", "MESSAGE": "message", "NOTE": "note", "MODE": "mode",
    "PLATFORM": "platform", "MEDIA_TYPE": "media", "SETTING": "setting", "SONG": "song", "ARTIST": "artist",
    "EVENT": "event", "TEXT": "text", "QUERY": "query",
}
SLOT_RE = re.compile(r"\{([A-Z_]+)(?:@([a-z]+))?(?::([^}]*))?\}")


def _slot_value(rng: random.Random, pool: Pool, source: str, used: list[str]) -> str:
    """A value for one slot, different from the sentence's other values ("từ Hà_Nội đến Hà_Nội" is no request)."""
    value = SOURCES[source](rng, pool)
    for _ in range(10):
        if value not in used:
            break
        value = SOURCES[source](rng, pool)
    return value


def render(template: str, rng: random.Random, pool: Pool) -> tuple[list[str], list[str]]:
    """Fill one template; returns word tokens and their BIO tags."""
    tokens: list[str] = []
    tags: list[str] = []
    used: list[str] = []
    for piece in template.split():
        match = SLOT_RE.fullmatch(piece)
        if match is None:
            tokens.append(piece)
            tags.append("O")
            continue
        entity, source, choices = match.groups()
        if choices:
            value = rng.choice(choices.split("|"))
        else:
            value = _slot_value(rng, pool, source or ROLE_SOURCE[entity], used)
            used.append(value)
        words = value.split()
        tokens.extend(words)
        tags.extend([f"B-{entity}"] + [f"I-{entity}"] * (len(words) - 1))
    return tokens, tags


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip inside a word: two letters swapped, one dropped or one doubled."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha()]
    i = rng.choice(letters)
    kind = rng.randrange(3)
    if kind == 0 and i + 1 < len(word) and word[i + 1].isalpha() and word[i + 1] != word[i]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind == 1:
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]


def add_noise(tokens: list[str], rng: random.Random) -> list[str]:
    """How people type on a phone; every step maps one token to one token."""
    if rng.random() < LOWERCASE_SHARE:
        tokens = [t.lower() for t in tokens]
    if rng.random() < CHAT_STYLE_SHARE:
        tokens = [rng.choice(ABBREVIATIONS[t.lower()]) if t.lower() in ABBREVIATIONS and rng.random() < 0.8 else t
                  for t in tokens]
    if rng.random() < TYPO_SHARE:
        typeable = [i for i, t in enumerate(tokens) if sum(ch.isalpha() for ch in t) >= 3]
        for i in rng.sample(typeable, min(len(typeable), rng.choice([1, 1, 2]))):
            tokens[i] = _typo(tokens[i], rng)
    if rng.random() < NO_DIACRITICS_SHARE:
        tokens = [strip_diacritics(t) for t in tokens]
    return tokens


def _phrasing(rng: random.Random, command_templates: tuple[list[str], list[str]],
              held_out: bool) -> tuple[str, str, str]:
    """Template, prefix and suffix; a held-out sentence gets a held-out template or a held-out filler."""
    seen, new = command_templates
    template, prefix, suffix = rng.choice(seen), rng.choice(PREFIXES[0]), rng.choice(SUFFIXES[0])
    if not held_out:
        return template, prefix, suffix
    if new and rng.random() < HELD_OUT_TEMPLATE_SHARE:
        return rng.choice(new), prefix, suffix
    if rng.random() < 0.5:
        return template, rng.choice(PREFIXES[1]), suffix
    return template, prefix, rng.choice(SUFFIXES[1])


def sample_example(rng: random.Random, pool: Pool, held_out: bool) -> Example:
    names = list(INTENTS)
    intent = rng.choices(names, weights=[INTENTS[n][0] for n in names])[0]
    commands = INTENTS[intent][1]
    command = rng.choice(sorted(commands))
    template, prefix, suffix = _phrasing(rng, commands[command], held_out)
    if template.endswith(suffix):  # "gọi lại giúp mình" + "giúp mình": users do not say it twice
        suffix = ""
    body, body_tags = render(template, rng, pool)
    tokens = prefix.split() + body + suffix.split()
    tags = ["O"] * len(prefix.split()) + body_tags + ["O"] * len(suffix.split())
    return Example(tokens=add_noise(tokens, rng), tags=tags, intent=intent, command=command)


def _draw_split(rng: random.Random, size: int, train: bool,
                seen: set[tuple[str, ...]]) -> list[tuple[Example, bool]]:
    """`size` new distinct sentences of 3..40 tokens, each with its held-out-phrasing flag."""
    pool = Pool(all_values=not train)
    drawn: list[tuple[Example, bool]] = []
    for _ in range(size * 50):
        held_out = not train and rng.random() < HELD_OUT_SHARE
        example = sample_example(rng, pool, held_out)
        key = tuple(example.tokens)
        if MIN_WORDS <= len(key) <= MAX_WORDS and key not in seen:
            seen.add(key)
            drawn.append((example, held_out))
            if len(drawn) == size:
                return drawn
    raise RuntimeError(f"only {len(drawn)} distinct sentences after {size * 50} draws")


def generate_flagged(seed: int = 13, sizes: tuple[int, int, int] = (4000, 500, 500)
                     ) -> dict[str, list[tuple[Example, bool]]]:
    """Train, then dev, then test, with no sentence in two splits; each example comes with
    True when its phrasing (template or filler) is held out of train."""
    rng = random.Random(seed)
    seen: set[tuple[str, ...]] = set()
    return {split: _draw_split(rng, size, split == "train", seen)
            for split, size in zip(SPLITS, sizes)}


def generate(seed: int = 13, sizes: tuple[int, int, int] = (4000, 500, 500)) -> dict[str, list[Example]]:
    """The splits without the flags, like `phone_assistant.generate`."""
    return {split: [ex for ex, _ in flagged] for split, flagged in generate_flagged(seed, sizes).items()}
