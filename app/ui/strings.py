"""Every string the screens show, in Chinese and English (keys are stable ids).

A plain table rather than gettext catalogues: two languages, switched at any
moment by the shopper, and a test (tests/unit/test_ui_strings.py) checks that
both languages have every key and the same ``{placeholders}``. Refusals from
the domain carry their own two-language messages and are shown as they are.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "zh": {
        # frame
        "lane": "收银通道",
        "lane_label": "收银通道 {lane}",
        "other_language": "English",
        "large_text": "大字",
        "normal_text": "标准字",
        "high_contrast": "高对比",
        "normal_contrast": "标准色",
        "call_staff": "呼叫店员",
        "staff_coming": "已通知店员，请稍候",
        # attract
        "welcome": "欢迎使用自助扫码购",
        "prompt": "请扫描会员码，或点击“开始购物”",
        "prompt_scan": "也可以直接把商品条码放到摄像头下",
        "start": "开始购物",
        # member
        "member_title": "会员识别",
        "member_prompt": "请把会员码对准摄像头，或输入手机号",
        "phone": "手机号",
        "ok": "确定",
        "skip": "跳过",
        "clear": "清除",
        "backspace": "退格",
        "back": "返回",
        "member_welcome": "欢迎您，会员价已生效",
        "member_welcome_offline": "已记录您的手机号，会员价已生效（网络恢复后积分到账）",
        "member_already": "您已登录会员",
        "member_qr_unavailable": "本机暂不能识别会员码，请输入手机号",
        "member_phone_unavailable": "本机暂不能用手机号识别会员，请点击“跳过”",
        "member_phone_invalid": "请输入11位手机号",
        "member_unknown": "没有找到这个手机号的会员，请检查号码或点击“跳过”",
        "member_malformed": "无法识别这个会员码，请在会员App中刷新后重试",
        "member_bad_signature": "这个会员码无效，请在会员App中刷新后重试",
        "member_expired": "会员码已过期，请在会员App中刷新后重试",
        "member_credential_expired": "会员资格需要更新，请打开会员App登录",
        "member_sign_in": "会员登录",
        "member_label": "会员",
        "member_provisional": "（待确认）",
        # shopping
        "cart_title": "购物车",
        "cart_empty_hint": "把商品条码放到摄像头下扫描",
        "items": "{count} 件",
        "items_one": "{count} 件",
        "subtotal": "原价合计",
        "savings": "已优惠",
        "total": "应付",
        "pay": "去付款",
        "type_code": "手动输入条码",
        "type_code_title": "输入条码或称重码（PLU）",
        "enter": "添加",
        "remove": "删除",
        "each": "单价",
        "per_kg": "/千克",
        "weight": "{kg} 千克",
        "added": "已加入：{name_zh}",
        "refused": "{message_zh}",
        "refused_unreadable": "扫描到的内容无法识别，请重新扫描商品条码",
        "cart_frozen": "正在付款，购物车暂时不能修改",
        "cart_empty": "购物车是空的，请先扫描商品",
        "nothing_to_pay": "应付金额为零，无法用钱包支付：请呼叫店员",
        "disk_full": "本收银台存储空间不足，暂时无法付款，已通知店员：请到其他收银台结账",
        "clock_wrong": "本收银台时钟不对，暂时无法付款，已通知店员：请到其他收银台结账",
        "camera_lost": "摄像头暂时不可用：请点击“手动输入条码”，或呼叫店员",
        "welcome_back": "已恢复您的购物车",
        "age_approved": "店员已确认年龄",
        # age check
        "age_title": "需要店员确认年龄",
        "age_prompt": "以下商品需要核验年龄，店员正在赶来，请稍候",
        "age_line": "{name_zh}（{min_age}岁以上）",
        # pay
        "pay_title": "扫码付款",
        "checking_printer": "正在检查小票打印机…",
        "choose_wallet": "请选择付款方式",
        "wallet_wechat": "微信支付",
        "wallet_alipay": "支付宝",
        "wallet_unionpay": "云闪付",
        "scan_to_pay": "请用 {wallet} 扫描二维码付款",
        "scan_to_pay_any": "请用手机钱包扫描二维码付款",
        "amount": "金额",
        "expires_in": "二维码 {seconds} 秒后失效",
        "cancel": "取消付款",
        "payment_connecting": "正在连接支付服务…",
        "payment_closing": "正在取消订单，请稍候…",
        "payment_cancelled": "已取消付款，您可以继续购物",
        "payment_expired": "付款二维码已过期，请重新点击“去付款”",
        "payment_failed": "付款未成功，请重试或呼叫店员",
        "payment_code_not_now": "请在付款页面出示付款码：先点击“去付款”",
        "payment_code_not_taken": "本收银台不支持该钱包的付款码，"
                                  "请换用其他钱包或扫描屏幕上的二维码",
        "declined_insufficient_funds": "余额不足，付款未成功：请换一种支付方式",
        "declined_code_expired": "付款码已过期：请刷新付款码后重新出示",
        "declined_code_used": "该付款码已使用过：请刷新付款码后重新出示",
        "declined_code_invalid": "付款码无效：请刷新付款码后重新出示",
        "declined_declined": "钱包拒绝了这笔付款：请换一种支付方式或呼叫店员",
        "show_code": "或向摄像头出示付款码",
        "type_payment_code": "输入付款码数字",
        "show_code_hint": "打开微信或支付宝的“付款码”，对准摄像头",
        "confirm_on_phone": "请在手机上确认付款",
        "confirm_wallet": "{wallet}付款码",
        "confirm_countdown": "{seconds}秒内未确认，付款将自动撤销",
        "payment_code_cancelling": "正在撤销付款，请稍候…",
        "payment_code_reversing": "正在撤销付款：如手机正在要求输入密码，请在手机上完成或取消。"
                                  "在支付平台确认之前我们会一直重试",
        "payment_code_cancelled": "付款已撤销，未扣款。您可以重新出示付款码或扫码付款",
        "payment_code_timeout": "手机上未及时确认，付款已撤销，未扣款。请重新出示付款码或扫码付款",
        # receipt
        "thanks": "付款成功，谢谢惠顾！",
        "take_receipt": "请取走小票，出口请出示小票上的二维码",
        "printing": "正在打印小票…",
        "exit_pass_title": "出口凭证",
        "exit_pass_prompt": "小票未能打印。请用手机拍下此二维码，出口时出示；小票可找店员补打",
        "exit_pass_on_screen": "出口时请出示此二维码",
        "audit": "本单被抽中出口核验，请在出口处将商品交店员核对，谢谢配合",
        "points": "本次获得积分：{points}",
        "receipt_saved": "本次共节省 {amount}",
        "order": "订单号 {order_id}",
        "done": "完成",
        # still there
        "still_there_title": "您还在吗？",
        "still_there_prompt": "{seconds} 秒后将清空购物车",
        "still_here": "我还在",
        # lane states
        "closed_title": "本通道暂停服务",
        "closed_prompt": "请到其他收银通道结账，谢谢",
        "out_of_order_title": "本机暂时故障",
        "out_of_order_prompt": "摄像头无法使用。请到其他收银通道，或呼叫店员",
        "records_damaged": "本收银台的记录已损坏，暂停收款。请到其他收银通道结账。\n"
                           "店员：请恢复最近的备份：{command}",
        "out_of_order_clock": "本机时钟显示 {reads}，时间不对，暂停收银。\n请到其他收银通道。"
                              "店员：请设置日期和时间",
        "error_title": "出了点问题",
        "error_generic": "您的购物车已保存，请点击“返回”重试，或呼叫店员",
        "error_disk_full": "本收银台存储空间已满，刚才的操作没有保存。已通知店员：请稍候，"
                           "或到其他收银台结账",
        "paid_not_recorded": "您已付款成功，请勿再次付款。本收银台存储空间已满，暂时无法出具"
                             "小票；已通知店员，请稍候。订单号 {order_id}",
        # staff mode
        "staff_title": "员工模式",
        "staff_pin_prompt": "请输入员工密码",
        "staff_badge_for": "员工卡",
        "sign_out": "退出员工模式",
        "menu": "返回菜单",
        "staff_pick": "请选择",
        "staff_amount_prompt": "新的行价格（以分为单位，如 1250 = 12.50）",
        "act_reset": "重置本机",
        "act_void_line": "删除商品行",
        "act_approve_age": "确认年龄",
        "act_override_price": "改价（店长）",
        "act_refund": "退款（店长）",
        "act_reprint": "补打小票",
        "act_verify_pass": "核验出口凭证",
        "act_open_lane": "开放通道",
        "act_close_lane": "关闭通道",
        "act_flush_outbox": "上传事件",
        "act_retry_dead": "重试搁置事件",
        "act_audit_log": "审计日志",
        "act_device_health": "设备状态",
        "act_x_report": "X 报表",
        "act_print_x": "打印 X 报表",
        "act_z_report": "Z 报表 日结（店长）",
        # demo
        "demo_shelf": "演示货架",
        "demo_shelf_title": "演示货架：点击商品，把它“放到摄像头下”",
        "demo_member": "会员码：{member_id}",
        "demo_phone_pay": "模拟手机：付款",
        "demo_phone_decline": "模拟手机：拒绝",
        "close": "关闭",
    },
    "en": {
        "lane": "Lane",
        "lane_label": "Lane {lane}",
        "other_language": "中文",
        "large_text": "Large text",
        "normal_text": "Normal text",
        "high_contrast": "High contrast",
        "normal_contrast": "Normal colours",
        "call_staff": "Call staff",
        "staff_coming": "Staff have been called and are on their way",
        "welcome": "Welcome to Scan & Go",
        "prompt": "Scan your member code or tap Start",
        "prompt_scan": "Or just hold a product's barcode under the camera",
        "start": "Start",
        "member_title": "Members",
        "member_prompt": "Hold your member QR under the camera, or type your phone number",
        "phone": "Phone number",
        "ok": "OK",
        "skip": "Skip",
        "clear": "Clear",
        "backspace": "Del",
        "back": "Back",
        "member_welcome": "Welcome back! Member prices apply",
        "member_welcome_offline": "Phone number noted: member prices apply (points follow "
                                  "when the network is back)",
        "member_already": "You are already signed in as a member",
        "member_qr_unavailable": "This lane cannot read member codes right now: type your "
                                 "phone number instead",
        "member_phone_unavailable": "This lane cannot look up phone numbers right now: tap Skip",
        "member_phone_invalid": "Please type an 11-digit mobile number",
        "member_unknown": "No member has this phone number: check it or tap Skip",
        "member_malformed": "That member code could not be read: refresh it in the app and "
                            "try again",
        "member_bad_signature": "That member code is not valid: refresh it in the app and "
                                "try again",
        "member_expired": "That member code has expired: refresh it in the app and try again",
        "member_credential_expired": "Your membership needs renewing: open the app and sign in",
        "member_sign_in": "Member sign-in",
        "member_label": "Member",
        "member_provisional": " (to be confirmed)",
        "cart_title": "Your cart",
        "cart_empty_hint": "Hold a product's barcode under the camera",
        "items": "{count} items",
        "items_one": "{count} item",
        "subtotal": "Regular price",
        "savings": "You save",
        "total": "To pay",
        "pay": "Pay",
        "type_code": "Type a code",
        "type_code_title": "Type the barcode number or PLU",
        "enter": "Add",
        "remove": "Remove",
        "each": "each",
        "per_kg": "/kg",
        "weight": "{kg} kg",
        "added": "Added: {name_en}",
        "refused": "{message_en}",
        "refused_unreadable": "That could not be read as a barcode: scan the product again",
        "cart_frozen": "Payment in progress: the cart cannot change now",
        "cart_empty": "Your cart is empty: scan a product first",
        "nothing_to_pay": "There is nothing to pay with a wallet: please call staff",
        "disk_full": "This lane cannot take payment right now (its storage is full). Staff "
                     "have been called: please use another checkout",
        "clock_wrong": "This lane cannot take payment right now (its clock is wrong). Staff "
                       "have been called: please use another checkout",
        "camera_lost": "The camera is not working: tap \u201cType a code\u201d or call staff",
        "welcome_back": "Your cart is back as you left it",
        "age_approved": "Age check approved by staff",
        "age_title": "Age check needed",
        "age_prompt": "These items need an age check. Staff are on their way: please wait",
        "age_line": "{name_en} ({min_age}+)",
        "pay_title": "Scan to pay",
        "checking_printer": "Checking the receipt printer...",
        "choose_wallet": "How would you like to pay?",
        "wallet_wechat": "WeChat Pay",
        "wallet_alipay": "Alipay",
        "wallet_unionpay": "UnionPay",
        "scan_to_pay": "Scan the QR code with {wallet}",
        "scan_to_pay_any": "Scan the QR code with your phone's wallet",
        "amount": "Amount",
        "expires_in": "QR code valid for {seconds} s",
        "cancel": "Cancel payment",
        "payment_connecting": "Connecting to the payment service...",
        "payment_closing": "Cancelling the order, one moment...",
        "payment_cancelled": "Payment cancelled: you can carry on shopping",
        "payment_expired": "The payment QR expired: tap Pay to try again",
        "payment_failed": "The payment did not go through: try again or call staff",
        "payment_code_not_now": "Show your payment code on the pay screen: "
                                "tap \u201cPay\u201d first",
        "payment_code_not_taken": "This lane does not take that wallet's payment code: use another "
                                  "wallet or scan the QR on screen",
        "declined_insufficient_funds": "Not enough balance: the payment did not go through. "
                                       "Please use another way to pay",
        "declined_code_expired": "That payment code has expired: refresh it on your phone and "
                                 "show it again",
        "declined_code_used": "That payment code was already used: refresh it on your phone and "
                              "show it again",
        "declined_code_invalid": "That payment code is not valid: refresh it on your phone and "
                                 "show it again",
        "declined_declined": "Your wallet declined the payment: use another way to pay or call "
                             "staff",
        "show_code": "or show your payment code to the camera",
        "type_payment_code": "Type the payment code's digits",
        "show_code_hint": "Open it in WeChat or Alipay and hold it up to the camera",
        "confirm_on_phone": "Confirm the payment on your phone",
        "confirm_wallet": "{wallet} payment code",
        "confirm_countdown": "Not confirmed within {seconds} s: the payment is cancelled",
        "payment_code_cancelling": "Cancelling the payment, one moment...",
        "payment_code_reversing": "Cancelling the payment: if your phone asks for the password, "
                                  "finish or cancel it there. We keep trying until the wallet "
                                  "confirms",
        "payment_code_cancelled": "Payment cancelled: nothing was charged. Show a payment code "
                                  "again or scan the QR",
        "payment_code_timeout": "Not confirmed on the phone in time: the payment was cancelled "
                                "and nothing was charged. Show a payment code again or scan "
                                "the QR",
        "thanks": "Paid. Thank you for shopping with us!",
        "take_receipt": "Please take your receipt: show its QR code at the exit",
        "printing": "Printing your receipt...",
        "exit_pass_title": "Exit pass",
        "exit_pass_prompt": "Your receipt did not print. Take a photo of this QR code and "
                            "show it at the exit; staff can reprint the receipt",
        "exit_pass_on_screen": "Show this QR code at the exit",
        "audit": "This sale was picked for an exit check: please show your items to staff "
                 "at the exit. Thank you",
        "points": "Points earned: {points}",
        "receipt_saved": "You saved {amount}",
        "order": "Order {order_id}",
        "done": "Done",
        "still_there_title": "Are you still there?",
        "still_there_prompt": "Your cart will be cleared in {seconds} s",
        "still_here": "I'm still here",
        "closed_title": "This lane is closed",
        "closed_prompt": "Please use another checkout. Thank you",
        "out_of_order_title": "This lane is out of order",
        "out_of_order_prompt": "The camera is not working. Please use another checkout or "
                               "call staff",
        "records_damaged": "This kiosk's records are damaged: it cannot take payments. "
                           "Please use another checkout.\nStaff: restore the last backup: "
                           "{command}",
        "out_of_order_clock": "The kiosk's clock says {reads}, which is wrong, so this lane "
                              "cannot sell. Please use another checkout. Staff: set the date "
                              "and time",
        "error_title": "Something went wrong",
        "error_generic": "Your cart is saved: tap Back to try again, or call staff",
        "error_disk_full": "This lane's storage is full, so your last step was not saved. "
                           "Staff have been called: please wait, or use another checkout",
        "paid_not_recorded": "Your payment went through: do not pay again. This lane's "
                             "storage is full, so it cannot give your receipt yet; staff "
                             "have been called, please wait. Order {order_id}",
        "staff_title": "Staff mode",
        "staff_pin_prompt": "Enter your staff PIN",
        "staff_badge_for": "Badge",
        "sign_out": "Sign out",
        "menu": "Menu",
        "staff_pick": "Choose one",
        "staff_amount_prompt": "New line price in cents (1250 = 12.50)",
        "act_reset": "Reset lane",
        "act_void_line": "Void a line",
        "act_approve_age": "Approve age",
        "act_override_price": "Override price (manager)",
        "act_refund": "Refund (manager)",
        "act_reprint": "Reprint receipt",
        "act_verify_pass": "Check exit pass",
        "act_open_lane": "Open lane",
        "act_close_lane": "Close lane",
        "act_flush_outbox": "Upload events",
        "act_retry_dead": "Retry set-aside events",
        "act_audit_log": "Audit log",
        "act_device_health": "Device health",
        "act_x_report": "X report",
        "act_print_x": "Print X report",
        "act_z_report": "Z report, close day (manager)",
        "demo_shelf": "Demo shelf",
        "demo_shelf_title": "Demo shelf: click a product to hold it under the camera",
        "demo_member": "Member code: {member_id}",
        "demo_phone_pay": "Simulated phone: pay",
        "demo_phone_decline": "Simulated phone: decline",
        "close": "Close",
    },
}


def say(language: str, key: str, **values: object) -> str:
    """The string ``key`` in ``language`` with its values filled in ('' for no key).

    Plurals: when ``count`` is 1 and ``<key>_one`` exists, that is used ("1 item", not
    "1 items"); Chinese has no plural, so its ``_one`` strings read as the others do."""
    table = STRINGS[language]
    if values.get("count") == 1 and f"{key}_one" in table:
        key = f"{key}_one"
    text = table.get(key, "")
    return text.format(**values) if values else text


def lane_name(lane_id: str) -> str:
    """A lane id as a shopper reads it after the word "Lane": "lane-01" -> "01" (not
    "Lane lane-01"); an id without the prefix ("K3") as it is."""
    for prefix in ("lane-", "lane_", "lane"):
        if lane_id.lower().startswith(prefix) and len(lane_id) > len(prefix):
            return lane_id[len(prefix):]
    return lane_id
