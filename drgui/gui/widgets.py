"""Small building blocks shared by the pages: cards, state dots, banners, section titles."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar

from PySide6 import QtGui
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QHideEvent
from PySide6.QtWidgets import (
    QBoxLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from drgui.core import fmt
from drgui.core.errors import DrguiError
from drgui.core.progress import Progress
from drgui.gui.humanize import parse_iso

if TYPE_CHECKING:
    from drgui.core.ops.status import Status
    from drgui.gui.controller import Controller

STATE_COLORS = {
    "ok": "#2da44e",
    "warning": "#d4a72c",
    "due": "#d4a72c",
    "overdue": "#cf222e",
    "failed": "#cf222e",
    "never": "#8c959f",
    "running": "#1f6feb",
}
STATE_WORDS = {
    "ok": "Within RPO",
    "warning": "Close to RPO",
    "overdue": "Older than RPO",
    "never": "Never backed up",
}

STYLE = """
QWidget#sidebarFrame { background: #f0f2f5; border-right: 1px solid #d0d7de; }
QListWidget#sidebar { background: transparent; border: none; font-size: 14px; outline: 0; }
QListWidget#sidebar::item { padding: 8px 14px; border-radius: 6px; margin: 2px 8px; color: #1f2328; }
QListWidget#sidebar::item:selected { background: #dbe7fb; color: #0b3d91; font-weight: 600; }
QFrame#card { background: #ffffff; border: 1px solid #d0d7de; border-radius: 8px; }
QLabel#cardTitle { font-size: 13px; font-weight: 600; color: #57606a; text-transform: uppercase; }
QLabel#pageTitle { font-size: 22px; font-weight: 600; color: #1f2328; }
QLabel#muted { color: #57606a; }
QPushButton#backupNowButton { background: #1f6feb; color: white; font-size: 15px; font-weight: 600;
    padding: 10px 22px; border-radius: 6px; border: none; }
QPushButton#backupNowButton:disabled { background: #8cb4f5; }
QFrame#banner { border-radius: 6px; }
QListWidget#sidebar:focus { border: 2px solid #0969da; border-radius: 6px; }
QListWidget#sidebar::item:focus { border: 2px solid #0969da; }
QPushButton { background: #f6f8fa; color: #1f2328; border: 1px solid #afb8c1; border-radius: 4px;
    padding: 4px 12px; min-height: 18px; }
QPushButton:hover { background: #eef1f4; }
QPushButton:pressed { background: #dde2e7; }
QPushButton:disabled { color: #8c959f; }
QPushButton:focus { border: 2px solid #0969da; padding: 3px 11px; }
QPushButton#backupNowButton:focus { border: 3px solid #0b3d91; padding: 7px 19px; }
"""

MESSAGE_STYLES = {
    "busy": "color: #57606a;",
    "done": "color: #2da44e; font-weight: 600;",
    "warning": "color: #9a6700; font-weight: 600;",
    "error": "color: #cf222e;",
}


def error_html(error: DrguiError) -> str:
    """An error as the message lines show it: the message in bold, then what to do."""
    return f"<b>{error.message}</b>" + (f"<br>What to do: {error.hint}" if error.hint else "")


def plan_key(status: Status | None) -> tuple:
    """What a page's message can be about in the plan: its sources and destinations (name and kind)."""
    if status is None:
        return ()
    return (
        tuple(sorted((s.name, s.kind) for s in status.sources)),
        tuple(sorted((d.name, d.kind) for d in status.destinations)),
    )


class MessageLine(QLabel):
    """A page's message line, bound to the state it describes: the screen never contradicts the state.

    `say()` reports work under way or its outcome, as things are when it is said. The line clears itself
    as soon as that state moves on, so an old "Backup cancelled" or "The plan has no drive destination"
    never sits under a newer state:
    - the plan changes (a source or destination added, removed or renamed: from the next status),
    - a new run is recorded in the history after the message was said (a backup, a restore test, a
      sync: from the next status, wherever it was started),
    - a backup starts,
    - the page is left (re-entering it shows the state, not an old message),
    - `clear_on(signal)`: whatever else makes the message moot (the Kind changed in the add dialog).
    What a page derives from the state itself (an empty-table hint) is not a message: the page sets or
    clears it on every status it shows."""

    def __init__(self, controller: Controller | None = None, object_name: str = "", parent=None) -> None:
        super().__init__(parent)
        if object_name:
            self.setObjectName(object_name)
        self.setWordWrap(True)
        self.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.controller = controller
        self._said_at: datetime | None = None
        self._plan: tuple = ()
        self._last_run = 0
        self.level = "busy"
        self.hide()
        if controller is not None:
            controller.status_changed.connect(self._on_status)
            controller.backup_started.connect(self.clear)

    def say(self, text: str, level: str = "busy") -> None:
        """Show `text` (rich text) as work under way ("busy"), "done", "warning" or "error"."""
        self.level = level
        self.setStyleSheet(MESSAGE_STYLES.get(level, MESSAGE_STYLES["busy"]))
        self.setText(text)
        # the history keeps whole seconds: a run finished in this second is the one this reports on
        self._said_at = datetime.now(UTC).replace(microsecond=0)
        status = self.controller.status if self.controller is not None else None
        self._plan = plan_key(status)
        recent = self.controller.recent if self.controller is not None else []
        self._last_run = max((run.id for run in recent), default=0)
        self.setVisible(bool(text))

    def say_error(self, error: DrguiError) -> None:
        self.say(error_html(error), "error")

    @Slot()
    def clear(self) -> None:
        super().clear()
        self._said_at = None
        self.hide()

    def clear_on(self, *signals) -> None:
        for signal in signals:
            signal.connect(self.clear)

    @property
    def showing(self) -> bool:
        return bool(self.text())

    @Slot(object)
    def _on_status(self, status: Status) -> None:
        said_at = self._said_at
        if said_at is None:
            return
        if self._plan and plan_key(status) != self._plan:
            self.clear()
            return
        self._plan = self._plan or plan_key(status)
        recent = self.controller.recent if self.controller is not None else []
        if any(run.id > self._last_run and self._is_later(run, said_at) for run in recent):
            self.clear()

    def _is_later(self, run, said_at: datetime) -> bool:
        """A run that is still going or ended after the message: the state moved on. (The run the message
        reports on, e.g. the .env sync just done, ended before it was said.)"""
        finished = parse_iso(run.finished)
        return finished is None or finished > said_at

    def hideEvent(self, event: QHideEvent) -> None:
        # The page holding the line was left (an ancestor hid, the line itself did not), or the window
        # went to the tray; not when the window is minimised (a spontaneous hide).
        if not event.spontaneous() and not self.isHidden() and self._said_at is not None:
            self.clear()
        super().hideEvent(event)


def title(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("pageTitle")
    return label


def scrolling_page(page: QWidget) -> QVBoxLayout:
    """Make `page` a frameless scroll area; returns the layout of its content (page margins and spacing)."""
    outer = QVBoxLayout(page)
    outer.setContentsMargins(0, 0, 0, 0)
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    outer.addWidget(scroll)
    content = QWidget()
    scroll.setWidget(content)
    layout = QVBoxLayout(content)
    layout.setContentsMargins(24, 20, 24, 20)
    layout.setSpacing(14)
    return layout


def heading_row(layout: QVBoxLayout, heading: QLabel, text: str, object_name: str, slot) -> QPushButton:
    """Add a row to `layout`: the page heading on the left, its main action button on the right."""
    head = QHBoxLayout()
    head.addWidget(heading)
    head.addStretch(1)
    button = QPushButton(text)
    button.setObjectName(object_name)
    button.clicked.connect(slot)
    head.addWidget(button)
    layout.addLayout(head)
    return button


def action_button(text: str, object_name: str, slot, row: QBoxLayout | None = None) -> QPushButton:
    """A push button named `object_name` that calls `slot`; added to `row` (a layout) when one is given."""
    button = QPushButton(text)
    button.setObjectName(object_name)
    button.clicked.connect(slot)
    if row is not None:
        row.addWidget(button)
    return button


def label_card(heading: str, object_name: str | None = None) -> tuple[Card, QLabel]:
    """A card holding one word-wrapped label (named `object_name`), for a page to fill in."""
    card = Card(heading)
    label = QLabel()
    if object_name is not None:
        label.setObjectName(object_name)
    label.setWordWrap(True)
    card.body.addWidget(label)
    return card, label


def path_row(field: QWidget, browse_name: str, accessible_name: str, slot) -> QHBoxLayout:
    """A path field and its "Choose…" button (named `browse_name`, calling `slot`), as one form row."""
    row = QHBoxLayout()
    row.addWidget(field, 1)
    browse = QPushButton("Choose…")
    browse.setObjectName(browse_name)
    browse.setAccessibleName(accessible_name)
    browse.clicked.connect(slot)
    row.addWidget(browse)
    return row


_BREAK_AFTER = re.compile(r"([/_@])(?=\S)")


def breakable(text: str) -> str:
    """Plain text with a line-break chance after each '/', '_' and '@': a long path or name wraps instead
    of making the page scroll sideways (Qt breaks lines at spaces). Rich text is left as it is."""
    return text if QtGui.Qt.mightBeRichText(text) else _BREAK_AFTER.sub("\\1\u200b", text)


def muted(text: str = "") -> QLabel:
    label = QLabel(breakable(text))
    label.setObjectName("muted")
    label.setWordWrap(True)
    return label


class Card(QFrame):
    def __init__(self, heading: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        self.body = QVBoxLayout(self)
        self.body.setContentsMargins(16, 12, 16, 14)
        self.body.setSpacing(8)
        if heading:
            label = QLabel(heading)
            label.setObjectName("cardTitle")
            self.body.addWidget(label)


def dot(state: str) -> QLabel:
    label = QLabel("●")
    label.setStyleSheet(f"color: {STATE_COLORS.get(state, '#8c959f')}; font-size: 16px;")
    label.setToolTip(STATE_WORDS.get(state, state))
    label.setAccessibleName(STATE_WORDS.get(state, state))  # a screen reader says the state, not "●"
    return label


class Banner(QFrame):
    """A coloured strip at the top of the window: a message, what to do, and buttons."""

    closed = Signal()

    COLORS: ClassVar[dict[str, tuple[str, str]]] = {
        "info": ("#ddf4ff", "#0969da"),
        "warning": ("#fff8c5", "#9a6700"),
        "error": ("#ffebe9", "#cf222e"),
    }

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 8, 8)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout.addWidget(self.text, 1)
        self.buttons = QHBoxLayout()
        layout.addLayout(self.buttons)
        close = QPushButton("Dismiss")
        close.setObjectName("bannerDismiss")
        close.clicked.connect(self.dismiss)
        layout.addWidget(close)
        self.level = "info"
        self.topic = ""
        self.hide()

    def show_message(self, level: str, message: str, hint: str | None = None, topic: str = "") -> None:
        """Show a message; `topic` names the state it is about, so `clear_topic` takes it away when that
        state moves on (a status that could not be read, then was)."""
        background, border = self.COLORS.get(level, self.COLORS["info"])
        self.level = level
        self.topic = topic
        self.setStyleSheet(
            f"QFrame#banner {{ background: {background}; border: 1px solid {border}; }}"
            "QFrame#banner QLabel { color: #1f2328; }"
        )
        self.text.setText(f"<b>{message}</b>" + (f"<br>{hint}" if hint else ""))
        self.clear_buttons()
        self.show()

    def add_button(self, text: str, object_name: str) -> QPushButton:
        button = QPushButton(text)
        button.setObjectName(object_name)
        self.buttons.addWidget(button)
        return button

    def clear_buttons(self) -> None:
        while self.buttons.count():
            item = self.buttons.takeAt(0)
            widget = item.widget() if item is not None else None
            if widget:
                widget.deleteLater()

    def clear_topic(self, topic: str) -> None:
        if self.topic == topic:
            self.hide()

    @Slot()
    def dismiss(self) -> None:
        self.hide()
        self.closed.emit()


def clear_layout(layout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        widget = item.widget()
        if widget is not None:
            widget.deleteLater()
        elif item.layout() is not None:
            clear_layout(item.layout())


# Counters the engine may add to its progress events (files and bytes scanned, skipped, new): shown when set
PROGRESS_COUNTERS = (
    ("files_scanned", "files scanned", False),
    ("files_new", "new", False),
    ("files_skipped", "unchanged", False),
    ("bytes_scanned", "scanned", True),
    ("bytes_skipped", "skipped", True),
    ("bytes_new", "new", True),
)


def progress_text(event: Progress) -> str:
    """ "48% · 12.0 MB of 25.0 MB · about 2m left" when the size is known, "12.0 MB · 3.1 MB/s" otherwise."""
    parts: list[str] = []
    if event.bytes_total:
        done = min(event.bytes_done, event.bytes_total)
        parts.append(f"{int(100 * done / event.bytes_total)}%")
        parts.append(f"{fmt.size(done)} of {fmt.size(event.bytes_total)}")
        if event.rate and event.rate > 0 and done < event.bytes_total:
            parts.append(f"about {fmt.duration(max(1, round((event.bytes_total - done) / event.rate)))} left")
    elif event.bytes_done:
        parts.append(fmt.size(event.bytes_done))
        if event.rate:
            parts.append(f"{fmt.size(event.rate)}/s")
    for attribute, word, is_size in PROGRESS_COUNTERS:
        value = getattr(event, attribute, None)
        if isinstance(value, int) and value:
            parts.append(f"{fmt.size(value) if is_size else f'{value:,}'} {word}")
    return " · ".join(parts)


def reset_bar(bar: QProgressBar) -> None:
    """A busy bar, ready for a new run's `advance_bar`."""
    bar.setRange(0, 0)
    bar.setProperty("progressKey", None)


def show_progress(bar: QProgressBar, label: QLabel, event: Progress) -> None:
    """`advance_bar`, and `progress_text` on the label."""
    advance_bar(bar, event)
    text = progress_text(event)
    if text:
        label.setText(text)


def advance_bar(bar: QProgressBar, event: Progress) -> None:
    """A determinate bar that never goes back when the size is known (per step and source), else a busy bar."""
    key = (event.step, event.source)
    if event.bytes_total:
        value = int(1000 * min(event.bytes_done, event.bytes_total) / event.bytes_total)
        if bar.property("progressKey") != key or bar.maximum() != 1000:
            bar.setRange(0, 1000)
            bar.setValue(0)
            bar.setProperty("progressKey", key)
        bar.setValue(max(bar.value(), value))
    elif bar.property("progressKey") != key or event.message:  # a new phase of unknown size: busy
        bar.setRange(0, 0)
        bar.setProperty("progressKey", key)
