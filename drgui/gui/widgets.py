"""Small building blocks shared by the pages: cards, state dots, banners, section titles."""

from __future__ import annotations

from typing import ClassVar

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QScrollArea, QVBoxLayout, QWidget

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
"""


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


def muted(text: str = "") -> QLabel:
    label = QLabel(text)
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
        self.hide()

    def show_message(self, level: str, message: str, hint: str | None = None) -> None:
        background, border = self.COLORS.get(level, self.COLORS["info"])
        self.level = level
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
            if item.widget():
                item.widget().deleteLater()

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
