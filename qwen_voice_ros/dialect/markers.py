r"""
Hand-written dialect marker lexicon (from the project's lexicon.md) and the marker baseline.

Each entry is ``weights literal [regex]``: the entry fires when ``literal`` occurs in the
normalised text and, if a regex is given, the regex matches there; the regex's look-arounds
exclude the standard-Mandarin look-alikes (阿拉伯, 伊朗, 中午, 整理, 金额, 香港, 淘汰 ...).
Weights are rough evidence strengths: 3 = unambiguous dialect word, ~1.5 = typical but shared or
with a standard reading, <1 = weak.  Entries are matched on simplified, punctuation-free text
(``normalize_text``), so ``\s`` or ``$`` stand for a phrase boundary.
"""
from __future__ import annotations

import math
import re
from typing import Dict, List, Optional, Tuple

DIALECT_LABELS = ('mandarin', 'sichuanese', 'cantonese', 'shanghainese', 'northeastern',
                  'henan', 'hunan', 'shaanxi')
_ABBR = {'sc': 'sichuanese', 'yue': 'cantonese', 'sh': 'shanghainese', 'ne': 'northeastern',
         'hen': 'henan', 'hun': 'hunan', 'sx': 'shaanxi'}

_END = r'(?=\s|$)'

LEXICON = r"""
# ---- sichuanese ----
sc:3 啥子
sc:3 啷个
sc:2.5 咋个
sc:3 楞个
sc:2,hen:0.5 恁个
sc:1.5,hun:1.2 要得 要得(?=\s|$|噻|嘛|哈|不|啰|咯|撒)
sc:3 巴适
sc:1 安逸
sc:1.5 安逸 安逸(?=得很|惨|哦|噻|嘛|哈|惨了)|(?:好|嘿|太|硬是)安逸
sc:0.6,hun:0.6,sh:0.4 晓得
sc:3 铲铲
sc:2.5 莫得
sc:1,hun:0.5 没得 没得(?!选|说|办法)
sc:2.5 有没得
sc:1.5,hun:0.8 耍 (?<![玩杂])耍(?!脾气|赖|花|滑|酷|流氓|威风|心眼|手段|嘴皮|把戏|大牌|性子|小聪明|猴)
sc:3 耍朋友
sc:2.5,hun:0.5 好耍
sc:3 龙门阵
sc:3 摆一哈
sc:2 一哈
sc:2 哈儿
sc:3 一哈哈儿
sc:1.5 爪子 (?<![猫鸡狗鸭熊虎龙鹰鸟兔])爪子(?!印)
sc:3 搞快点
sc:2.5 切 (?:出|回|要|想|不|没|莫|你|我|他|一起|先|快)切(?=\s|$|哪|了|嘛|噻|耍|买|吃|看|上|睡)
sc:2.5 切哪
sc:2.5 屋头
sc:2 头 (?:冰箱|柜子|包包|锅|碗|车|屋|房间|抽屉|盒子|袋子)头(?!发|疼|痛|像)
sc:1 哪点 (?<!一)哪点(?!儿)
sc:3 细娃儿
sc:2,sx:0.5 娃儿
sc:3 幺儿
sc:3 幺妹
sc:3 老汉儿
sc:3 孃孃
sc:3 瓜娃子
sc:3 哈戳戳
sc:2,hun:1 脑壳
sc:2.5 要遭
sc:3 遭不住
sc:1.5 遭 遭(?=了|雨|罚|骂|打|偷|抢|撞|起)
sc:3 扯拐
sc:1.5 恼火
sc:3 鬼火
sc:2 日白
sc:3 冲壳子
sc:3 假打 (?<!放)假打
sc:3 弯酸
sc:1.2 硬是
sc:2 嘿 嘿(?=好|多|大|安逸|巴适|凶|热|冷|远|贵|辣|累|恼火)
sc:2 惨了 (?:热|冷|饿|累|困|气|忙|吓|痛|疼|高兴|安逸|好吃|辣|累|晒|渴|烦|痒)惨了
sc:1.5 起 (?:开|充|关|穿|戴|揣|挂|盖|捆|绑|锁|插|端|装|存)起(?=\s|$|嘛|噻|哈|撒)
sc:2,hun:0.8 倒 (?:跟|等|坐|看|拿|站|守|提|背|抱|扶|盯|照)倒(?!了|霉|闭|下|车|垃圾|水|茶|酒|掉|退|是)
sc:2 过生 过生(?!日|活)
sc:2 二天 (?<!第)二天
sc:2.5 默到
sc:2,hun:0.8 噻
sc:2 嗦 (?<![啰罗])嗦
sc:1.5 喃
sc:1 哈 (?<![哈])哈(?=\s|$)(?<!哈哈)
sc:2.5 老汉
sc:2.5 婆娘
sc:2.5 啥子
sc:2 凶 (?:好|嘿|太|硬是)凶(?=哦|\s|$|噻)
sc:2.5 巴巴适适
sc:2 勒个 勒个(?!人)
sc:2,hun:1 莫 莫(?=摸|动|慌|急|说|走|管|哭|闹|怕|去|搞|吵|乱|忘|挨|碰|跑|喊|摔|遭|着急|客气|耍|打|想|要|弄|看|讲|吃|喝|理|逗|玩)
sc:1.5 好久 好久(?=开|回|来|走|去|到|出发|放|下班|上班|吃|结束|能|才)
sc:1.5,sx:0.8 得很 (?<![的])得很(?=\s|$|哦|哟)
sc:1.5 哦 (?:好|嘿|惨|远|贵|多|大|久|很)哦(?=\s|$)
sc:1.5 惨了 (?:堵|挤|晒|坑|输|害|整|骂|吵|麻烦|恼火|痛|亏)惨了
sc:1.5 起 (?:充|开|关|穿|戴|煮|泡|晒|热|炖)起(?=电|水|饭|火|衣|鞋|帽|来\s|$|\s)
sc:1.5 遭 遭(?=老师|人|狗|车|雨|他|她|别人|妈|爸|城管|警察)
sc:2 盐巴
sc:1.5 一天到黑
sc:1.5 抄手
sc:1 串串
sc:1.5 切 (?:走嘛|我们|咱们)切(?!断|开|换|菜|片|割|除)
sc:1.5 耍水
sc:1 好远
# ---- northeastern ----
ne:3 咋整
ne:1.2,hen:0.8,sx:0.6 咋地
ne:1,hen:0.8,sx:0.6 咋的
ne:0.7,hen:0.6,sx:0.5 咋
ne:1.5,sc:0.3 整 (?<![调完工平严修规齐休])整(?!理|个|修|齐|体|天|容|数|洁|合|改|顿|夜|年|晚|套|整|治|形|编|风|装|点报时|片|条|张|版|车\
    |座|除|队|月|周|星期|场|本|瓶|桌|栋|层|块|箱|盒|批|袋|部|篇)
ne:3 嘎哈
ne:3 干哈
ne:3 啥玩意
ne:2.5 贼 (?<![小盗窃家做抓毛蟊])贼(?=好|冷|热|大|多|快|慢|贵|便宜|香|难|累|拉|帅|漂亮|有意思|好看|好吃|烦|亮|远|近|厉害|可爱|酸|辣|甜|舒服|高\
    |低|沉|重|轻|长|短|能|爱|棒|猛|逗|乐|带劲|得劲|稀罕|鸡|准|稳|牛|靠谱|好使|馋|困|饿|硬|软|干净|埋汰|磕碜|拉风|有劲|得劲|得瑟|嘚瑟|闹心|想|喜欢\
    |滑|脏|老|小|丑|淘|忙|划算|地道|能吃|能干|得劲|给力|带劲)
ne:3 贼拉
ne:2.5 嘎嘎 嘎嘎(?!叫|地叫)
ne:2 嗷嗷 嗷嗷(?!待哺|叫|地叫)
ne:3 老鼻子
ne:3 杠杠
ne:3 唠嗑
ne:1.5 唠 唠(?!叨)
ne:3 埋汰
ne:3 埋了吧汰
ne:3 磕碜
ne:3 膈应
ne:3 嘚瑟
ne:2.5 得瑟
ne:1.5 墨迹
ne:3 磨叽
ne:2 磨磨唧唧
ne:3 麻溜
ne:3 赶趟
ne:3 扯犊子
ne:3 扒瞎
ne:3 虎了吧唧
ne:1.5 虎 (?:真|太|有点|你|他|她|咋这么|可)虎(?!头|皮|口|牙|门|子|虎|纹|视|狼|鲸|妞)
ne:3 彪乎乎
ne:3 彪呼呼
ne:1.5 彪 (?:真|太|有点|你|他|她)彪(?!悍|形)
ne:3 闹挺
ne:1.5 闹心
ne:2.5 急眼
ne:3 招人稀罕
ne:1.2 稀罕 稀罕(?!物|事|玩意)
ne:3 嘎达
ne:1.5 旮旯
ne:2.5 老铁
ne:3 老妹儿
ne:2 大兄弟
ne:2.5 大妹子
ne:1.5 老姨
ne:3 波棱盖
ne:3 波拉盖
ne:2.5 脑瓜子
ne:1 脑瓜
ne:3 苞米
ne:3 外屋地
ne:3 卡了一跤
ne:3 秃噜
ne:3 嘚啵
ne:2 叭叭
ne:1 白话 白话(?!文)
ne:3 拔凉
ne:3 冰溜子
ne:3 嗯呐
ne:3 可不咋地
ne:3 哎呀妈呀
ne:2.5 哎呀我去
ne:1.5,hen:0.3,sx:0.2 瞅
ne:0.6,hen:0.8 搁
ne:3 欠削
ne:3 整景
ne:0.8,hen:1.5 得劲
ne:2 整点 整点(?!报时|的时候)(?=吃|喝|啥|儿|菜|酒|东西|好|小菜)
ne:2 整明白
ne:2 整不明白
ne:2.5 咋整
ne:2 咋回事儿
ne:2.5 那疙瘩
ne:2.5 这疙瘩
ne:3 贼好
ne:2 整一 整一(?=个|下|杯|瓶|盘|碗|口)
ne:2.5 得劲儿
ne:2.5 完犊子
ne:3 犊子
ne:2 忽悠
ne:2.5 眼瞅着
ne:2 老蒯
ne:2 造 造(?=了|得|完|没)(?<!制造)(?<!创造)(?<!建造)(?<!改造)(?<!打造)(?<!伪造)(?<!塑造)(?<!营造)(?<!捏造)(?<!人造)(?<!编造)
ne:2 血 血(?=好|冷|热|贵|难|累|好吃|好看|多)
ne:2.5 老得劲
ne:2.5 整个啥
ne:1.5 寻思
ne:1.5 消停
ne:1.5 齁
ne:1 溜达
ne:1 嚎
ne:1.2 明儿个
ne:1 今儿个
ne:1.5 猫 猫(?=在屋|在家|着|在被窝|冬)
ne:1.5 整个 整个(?=加湿器|菜|火锅|啥|锅|酒|小菜|东西|玩意|人来|肉)
ne:1.5 卡个
ne:1 搁家
ne:1.5 燥 (?<![干枯急暴烦浮])燥(?=了|得)
ne:1 挺带劲
ne:1.5 嘶哈
ne:1 冻得
# ---- henan ----
hen:3 中不中
hen:2 不中 不中(?!用|听|意|国|午|间|文|学|心)
hen:2.5 中 (?<![打射击命考猜选看集高初其空心之途家手当正暗口水相了投])中(?=\s|$|啊|哈|嘞|呗|吧|啦|哩|了吧)
hen:3 可中
hen:3 弄啥
hen:2.5 恁 恁(?!个)
hen:1.5,ne:0.6 俺
hen:0.6 可 可(?=好|美|得劲|带劲|排场|中|香|甜|热|冷|大|得劲)
hen:1.5 不得劲
hen:2.5 咋着
hen:1.2,sx:0.8 咋弄
hen:1.2,yue:0.3 嘞
hen:1.2,sx:0.3 哩
hen:3 哩很
hen:3 嘞很
hen:1.2 白 (?<![明黑空蛋洁清雪坦告独表旁对苍])白(?=动|说|去|管|吭|哭|闹|急|怕|慌|跑|乱|操心|想|惹|理|看|吃|喝|叫|嚷|胡|碰|生|走|搁)
hen:2.5 管不管
hen:1.5 不胜 不胜(?!感激|枚举|其|荣幸|酒力|唏嘘|数|寒|防|任|收拾)
hen:1.5 排场 (?<!讲)排场(?!面)
hen:3 眼气
hen:3 喷空
hen:3 信球
hen:2.5 二球
hen:3 瞎包
hen:3 鳖孙
hen:3 没材料
hen:2 日能
hen:3 妮儿
hen:1.5 小妞儿
hen:1 喝汤
hen:3 喝罢汤
hen:2.5 罢 (?:吃|喝|睡|洗|忙|说|干|看|歇|玩)罢(?!了|工|免|休|手)
hen:3 夜儿个
hen:3 夜个
hen:3 夜儿黑
hen:3 清起来
hen:3 今儿黑
hen:3 过晌
hen:1.5,sx:1.5 后晌
hen:2 年时
hen:2.5 老些
hen:3 恁些
hen:2 一堆儿
hen:0.5 待 待(?=哪|屋|这儿|那儿)
hen:1 怪 怪(?=好|好听|好看|好吃|美|得劲|中|带劲|排场|可怜|热|冷|远)
hen:3 我哩个乖乖
hen:1 乖乖 乖乖(?=\s|$|嘞|哩)
hen:1.5 饥 饥(?!饿|荒|渴|寒|肠|民)
hen:2 暄
hen:3 晒暖儿
hen:1.5 烩面
hen:1.5 胡辣汤
hen:0.7,sx:0.9 馍
hen:2.5 弄啥嘞
hen:2 啥哩
hen:2 中了 (?<![打射击命考猜选看集高初其空心之途家手当正暗口水相投])中了(?=\s|$|吧|啊)
hen:2 哩 (?:吃|去|走|干|弄|说|看|咋|好|中|热|冷|美)哩(?=\s|$|啥|很)
hen:2.5 得劲不得劲
hen:2 可得劲
hen:2.5 额滴神
hen:2 喷 喷(?=了一|一喷|空|两句|会儿|一会|啥|了半)
hen:2 一晌
hen:1.5 晌午
hen:1.5 吵 吵(?=他|她|你|孩子|两句|一顿)
hen:1.5 白 白(?=摔|丢|弄|碰|磕|砸|忘|光顾|顾着|耽误|淋|冻)
hen:1 可 (?<![不宁许认])可(?=会|扎实|滑|快|远|热|冷|能干|有意思|怪|聪明|懂事|高|胖|瘦|淘|甜|香)
hen:1 咦
# ---- hunan ----
hun:3 么子
hun:3 何解
hun:2 么样 (?<![怎那这什要])么样
hun:3 咯只
hun:3 咯杂
hun:2.5 一杂
hun:2 杂 (?:咯|那|哪|一|两|几|每)杂(?!志|技|事|乱|音|交|货|粮|草|物|质|费|务|种|七|牌|烩|面)
hun:3 咯哒
hun:2.5 咯里
hun:2.5 那哒
hun:3 哪哒
hun:1.5 哒 (?<![么嘀滴踢哒吧])哒(?![哒滴])
hun:2.5 咯 咯(?=只|杂|样|里|哒|冷|晏|热|多|好|大|么|个|些|下|餐|回|次|阵|号|边|件|附近|地方|家|种|台|本|位|条)
hun:0.7,yue:0.7 咯 咯(?=\s|$)(?<!咯咯)
hun:3 恰饭
hun:2 恰 (?<![融])恰(?!好|恰|当|巧|如|似|到好处|逢|是|在|值|相反|合|如其分)
hun:2.5 好恰
hun:2 呷
hun:2 港 (?<![香海军渔商空避风出入进离返回归深良外内台港湾])港(?=话|么|咯|哒|什|些|不|得|了|给|他|你|我|一|清|下|出|声|句|起|咯|么子|清楚|哈|死|笑\
    |白|个|蠢|啥|的|完|过|错|对)
hun:1.2,yue:2 冇
hun:1.5,yue:0.8 冇得
hun:3 霸得蛮
hun:3 霸蛮
hun:2.5 韵味 (?:好|蛮|咯|真|几|太)韵味|韵味(?:得很|咯|啰|哒)
hun:3 拐哒
hun:3 哦嗬
hun:2,yue:1.2 嬲
hun:3 宝里宝气
hun:3 发宝气
hun:2 宝气
hun:3 妹坨
hun:3 满妹子
hun:2.5 伢子
hun:3 细伢子
hun:3 满哥
hun:3 娭毑
hun:2.5 嗲嗲
hun:3 老倌子
hun:2,sc:1 堂客
hun:2.5 唧 (?<![叽])唧(?![唧咕喳])
hun:1.2 下子 (?<![一])下子(?=\s|$|咯|啰|唦|吧)
hun:0.8,sh:0.8 蛮 (?<![野南刁])蛮(?=好|多|大|冷|热|好吃|有|漂亮|舒服|远|贵|难|高|快|不错|可以|累|重|灵|嗲|香|喜欢|怕|韵味|厉害|听话|乖)
hun:3 搞忘记
hun:2 搞忘
hun:3 清早八早
hun:1.5,sc:0.8 记倒
hun:2.5 唦
hun:1,yue:1 啰 啰(?!嗦|唆)
hun:0.7,sh:0.7,yue:0.7 落雨
hun:0.5,sh:0.3,yue:0.3 日头
hun:2 么得 么得(?=事|用|问题)
hun:2 策 (?:莫|不要|你|他|又|在|乱|瞎)策(?!划|略|马|应|反|动|论|源)
hun:2 莫 莫(?=港|策|恰|急|慌|吵|哭|讲|闹|怕|走|动|搞|去|管|理|睬|乱|着急|客气|要|咯)
hun:2.5 有味
hun:2 鬼 (?:好|蛮|咯)鬼(?=多|大|冷|热)
hun:2 里手
hun:2.5 作孽
hun:2 冒得
hun:2 要不得 要不得(?=\s|$|啰|咯|哒)
hun:2.5 耍起
hun:2 咯咯
hun:2 唧 (?:点|下|会|些|滴)唧
hun:1.2,yue:0.8 冇得事
hun:1 咯 (?:车|去|吧|来|听|看|走|好|嘛)咯(?=\s|$|我|你|他)
hun:1 日头 日头(?=好|蛮|咯|太|大|晒)
# ---- shaanxi ----
sx:2.5 额 (?<![金名份超限数余定差总面巨配前税票款匾缺溢赔增减盈同年足])额(?!头|度|外|定|满|角|济|数|尔古纳|吉|鲁)
sx:3 嫽
sx:3 嘹咋咧
sx:3 扎咧
sx:1.5 美得很
sx:3 咥
sx:3 谝
sx:3 闲传
sx:2 言传 言传(?!身教)
sx:3 嫑
sx:0.8,ne:0.5,hen:0.5 甭
sx:1.5 得是 得是(?!因为|为了)
sx:3 麻达
sx:1,hun:1 么事
sx:1.2 么 (?<![什怎那这多要为干么])么(?=电|钱|人|时间|得|有|办法|问题|麻达|法|啥|撒|弄|说|见|吃|去|来|看|想)
sx:2 撒 (?<=[弄咥做干说吃想要是个])撒(?!谎|娇|手|尿|气|网|种|野|欢|泼|播|开|盐|落|钱|了一地|腿)
sx:1.2,hen:0.4 咧 咧(?!嘴|开|咧)
sx:3 兀 (?<![突])兀(?!自|立|鹫|然|术)
sx:2.5 喔个
sx:2.5 这搭
sx:3 阿搭
sx:2.5 碎 碎(?=娃|女子|怂|些|碎的|人人|伙|崽|碗碗|娃娃|孙)
sx:3 瓜怂
sx:3 碎怂
sx:1 怂 (?<![耸])怂(?!恿)
sx:3 瓷马
sx:2 瓷 瓷(?=得很|呆|怂|不拉几)
sx:3 颇烦
sx:3 木乱
sx:3 日塌
sx:3 日弄
sx:3 日鬼
sx:3 倭也
sx:3 受活
sx:3 攒劲
sx:2 一满
sx:1.5 贵贱 贵贱(?=不|都|要|得|也)
sx:3 啬皮
sx:3 羞先人
sx:2.5 黑咧
sx:2.5 今黑
sx:0.6,sh:0.6 寻 寻(?!找|求|常|思|觅|味|根|访|衅|死|欢|开心|短见|宝|人启事|呼|源|医|问)
sx:2 泡馍
sx:2 油泼面
sx:1 凉皮
sx:1.5 肉夹馍
sx:3 美扎咧
sx:1.5 咧 (?:饿|坏|好|美|走|来|去|完|晚|迟|冷|热|对|错|忘)咧(?=\s|$)
sx:2 么麻达
sx:2 额滴
sx:2 心疼 (?:长得|好|真|可)心疼
sx:2 娃 (?:碎|额|这|兀|咱)娃
sx:2 嘹扎咧
sx:2.5 失急慌忙
sx:2 蛮 蛮(?=好|多)(?<!野蛮)(?=好吃咧|好咧)
sx:2 得是
sx:1.5 瓷 (?:这么|这样|太|真|好|有点)瓷
sx:1 多钱
# ---- shanghainese ----
sh:3 侬
sh:3 阿拉 阿拉(?!伯|斯|丁|善|木|巴|蕾|比|贡|尔|米|莫|法)
sh:3 伊拉 伊拉(?!克)
sh:1.5 伊 (?<![木乃])伊(?!利|朗|拉克|斯|犁|春|甸|始|人|万|丽|尹|藤|势|比|莎|卡|娃|凡|索|文|妹|蚊|拉克|兰|宁|川|吾|于|谁|恩|芙|丽莎白|达|东)
sh:2 今朝 今朝(?!有酒|醉)
sh:1 明朝 明朝(?!末|初|年|时|的|皇|历史|灭|中|人|政|官|建|以|是|宫|朝|代|那)
sh:0.8,yue:0.3 昨日
sh:3 早浪向
sh:3 上昼
sh:2 下半日
sh:2.5 夜到
sh:3 夜里向
sh:3 辰光
sh:3 覅
sh:2 勿 (?<![请切])勿(?!忘|扰|施|谓|论)
sh:2.5 伐 (?<![步讨征攻北杀砍采口挞])伐(?=\s|$|啦|呀)
sh:3 呒没
sh:2.5 呒
sh:3 物事
sh:2.5 啥人
sh:1.5 啥个
sh:2 哪能 哪能(?!呢|不|这样|那样|让|说|行|够|忘|比|跟|和|把)
sh:3 阿里搭
sh:3 搿
sh:3 几钿
sh:3 交关
sh:3 邪气 邪气(?=好|大|多|冷|热|贵|灵|漂亮|嗲|适意|便宜|开心|吃力|难)
sh:3 侪
sh:1.8 拨 (?<![挑点调撩])拨(?!打|号|款|通|开|弄|动|付|出|云|乱|正|浪|冗|转|片|拉)
sh:3 辣海
sh:3 垃海
sh:3 垃拉
sh:3 白相
sh:3 困觉
sh:3 汰浴
sh:1.5 汰 (?<![淘吧])汰(?!换|旧|选|劣|渍|除)
sh:0.8 欢喜 欢喜(?!地|若狂)
sh:2.5 一歇
sh:3 等一歇
sh:2 快眼
sh:3 屋里厢
sh:3 屋里向
sh:3 小囡
sh:2.5 囡
sh:3 姆妈
sh:3 爷叔
sh:3 铜钿
sh:3 号头
sh:2.5 落班
sh:2 做生活
sh:2,hun:0.3 嗲 (?<!嗲)嗲(?!嗲)
sh:3 结棍
sh:2 灵光
sh:2.5 适意
sh:3 拎勿清
sh:3 戆
sh:3 瞎三话四
sh:2.5 煞 (?:热|冷|吓|笑|急|忙|饿|累|气|开心|难过|怨|痛|闷|轧|挤|烦|好|吃力|欢喜|开心|戆)煞
sh:2 脱 (?:忘记|坏|除|吃|卖|丢|用|扔|死|掼|落|关|熄|洗|烧|撕|剪|倒|浪费)脱(?!离|落|水|身|口|下|掉|贫|颖|手)
sh:2 介 介(?=好|冷|热|多|大|贵|漂亮|便宜|早|晚|快|慢|难|结棍|嗲|适意|好吃)(?<!简介)(?<!中介)(?<!媒介)(?<!推介)
sh:1.5 再会
sh:0.6,ne:0.4 老 (?<![养古元敬尊])老(?=好|灵|嗲|冷|热|贵|大|多|开心|适意|漂亮|吃力|远|便宜|难)
sh:1 吃力 (?:老|邪气|交关|蛮|吃)吃力|吃力(?=煞|伐)
sh:3 勿晓得
sh:3 隑
sh:2 言话
sh:1.5 浪 (?<![海风冲波巨热声麦骇破逐流放孟])浪(?=\s|$|向)
sh:3 侬好
sh:3 阿是
sh:2.5 啥地方
sh:2 晓得伐
sh:2 一道 一道(?=去|走|来|吃|白相|看|玩)
sh:2 老早 老早(?=就|已经|以前)
sh:2.5 哪恁
sh:2 个 (?:侬|伊|阿拉|我|伊拉)个(?![人子月头])
sh:2 咯 (?<!咯)咯(?=辰光)
sh:2.5 弄堂
sh:2 霞气 霞气(?=好|多)
sh:2 伊个
sh:2 勿要
sh:1.5 拿 拿(?=窗帘|门|灯|衣裳|条|只|伊|侬|物事|书|电视)(?=\S*(?:开|关|脱|好|掉|断))
sh:1.5 眼 (?:买|吃|拿|给|要|加|放|用|喝|多|少)眼(?![睛镜泪光神前])
sh:1.5 哀个
sh:1 唻
sh:1.5 后日
sh:1 老多
sh:1 拉拉开
# ---- cantonese ----
yue:3 佢
yue:3 哋
yue:3 咗
yue:3 嘅
yue:2.5 唔 唔(?!\s|$|唔|嗯)
yue:3 喺
yue:3 啲
yue:3 嘢
yue:1.8 系 (?<![关联体派水语星直银院维父母根干世谱菌])系(?=唔|咪|咩|啊|呀|喇|嘅|我|你|佢|边|乜|度|咁|人|好|咪|冇|啲|噉|呢|嗰|咪|未|几|真|假|一\
    |个|就|咪)
yue:3 睇
yue:2.5 咩
yue:2.5 乜
yue:3 点解
yue:3 点样
yue:2 点去
yue:3 边度
yue:3 边个
yue:2 几多
yue:0.8 几时
yue:3 几耐
yue:3 而家
yue:0.8,sh:0.5 今日
yue:3 听日
yue:3 琴日
yue:2 寻日
yue:3 听朝
yue:3 嚟
yue:3 揾
yue:3 搵
yue:3 畀
yue:2 俾
yue:3 唔该
yue:0.4 多谢
yue:3 返工
yue:3 屋企
yue:1.5 返 返(?!回|程|航|还|乡|校|老还童|璞|修|聘|利|现)
yue:2 食 (?<![美饮粮零面肉素主甜伙冷熟吞杂偏节进肥狗猫鸟鱼猪])食(?=饭|咗|嘢|唔|完|未|啲|得|多|少|晏|个|一|嘅|先|咩|乜|早|饱|药|烟|嘢|粥|面|餸|晒\
    |住|紧|过)
yue:1.2 饮 (?<![冷热])饮(?=茶|嘢|杯|咗|啲|酒|水|汤|奶|咖啡|晒|完|多|唔)
yue:3 瞓
yue:3 攰
yue:1.2 识 识(?=唔|讲|做|得|游|揸|煮|睇|嘅|听|写|揾)
yue:3 谂
yue:2.5 仲 (?<!伯)仲(?!裁|夏|秋|春|冬|介|尼)
yue:3 啱
yue:2 靓
yue:3 钟意
yue:3 咁
yue:3 噉
yue:3 呢度
yue:2 呢 (?<!\S)呢(?=度|啲|排|间|件|只|本|部|个|次|位|条|种|样|日|几|处|边|首|张|对|架|部)|呢(?=度|啲|排)
yue:3 嗰
yue:3 闩
yue:0.5 熄 熄(?!灭|火)
yue:2 喇 喇(?!叭|嘛)
yue:3 㗎
yue:3 喎
yue:3 啩
yue:3 啫
yue:2.5 吖
yue:2 佬 (?<![美鬼阔])佬(?!人)
yue:2 咪 咪(?=走|搞|郁|理|讲|做|喺|系|嘈|咁|住|啰|得|话|食|玩)
yue:3 梗系
yue:3 攞
yue:3 嘥
yue:2 氹
yue:3 冚
yue:3 喐
yue:2.5 晒 (?<=[食做用完讲卖睇饮写讲搞执识])晒
yue:3 点算
yue:3 差佬
yue:3 老豆
yue:3 细路
yue:3 好彩
yue:3 即系
yue:3 唔使
yue:3 使乜
yue:2.5 未 未(?=\s|$)
yue:2 街市
yue:2 埋单
yue:2.5 唔好
yue:2.5 边道
yue:2 嘈 嘈(?!杂)
yue:3 啩
yue:3 噏
yue:3 嗌
yue:3 揸
yue:3 咁样
yue:2 先 (?:食|睇|讲|去|做|行|试|等|冲凉|瞓)(?:\S{0,4})先(?=\s|$)
yue:3 冲凉
yue:2 餸
yue:2 企 (?<![国民私外央台])企(?=喺|度|埋|定|开|起身|喺度)|屋企
yue:2 郁 郁(?=手|下|吓|动)|唔好郁
yue:3 啦嘛
yue:2.5 係
yue:2 咯 (?:咗|吖|啦|好|得|系)咯
yue:2 行街
yue:2 乜嘢
yue:2 嚿
yue:2 孖
yue:2 焗
yue:2 靓仔
yue:2.5 靓女
yue:2 搞掂
yue:2 搞定 搞定(?=晒|咗)
"""


class MarkerEntry(object):
    """One lexicon entry: a literal prefilter, an optional regex and per-label weights."""

    __slots__ = ('literal', 'regex', 'weights', 'key')

    def __init__(self, literal: str, regex: Optional[str], weights: Dict[str, float]):
        self.literal = literal
        self.regex = re.compile(regex) if regex else None
        self.weights = weights
        self.key = literal if regex is None else literal + '~' + regex

    def count(self, text: str) -> int:
        """Occurrences in ``text`` (0 when the entry does not fire)."""
        if self.literal not in text:
            return 0
        if self.regex is None:
            return text.count(self.literal)
        return len(self.regex.findall(text))


def parse_lexicon(spec: str = LEXICON) -> List[MarkerEntry]:
    entries = []
    # A line ending in a backslash continues on the next one (keeps lines under 99 columns).
    spec = re.sub(r'\\\n\s*', '', spec)
    for line in spec.splitlines():
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        parts = line.split()
        weights = {}
        for item in parts[0].split(','):
            abbr, value = item.split(':')
            weights[_ABBR[abbr]] = float(value)
        regex = parts[2] if len(parts) > 2 else None
        entries.append(MarkerEntry(parts[1], regex, weights))
    return entries


class MarkerLexicon(object):
    """Scores normalised text against the lexicon; also yields the firing entries."""

    def __init__(self, entries: Optional[List[MarkerEntry]] = None):
        self.entries = entries if entries is not None else parse_lexicon()
        # Index entries by first literal character so a sentence only tests plausible entries.
        self._by_char: Dict[str, List[MarkerEntry]] = {}
        for entry in self.entries:
            self._by_char.setdefault(entry.literal[0], []).append(entry)

    def matches(self, text: str) -> List[Tuple[MarkerEntry, int]]:
        """Entries firing in ``text`` with their counts."""
        found = []
        for ch in set(text):
            for entry in self._by_char.get(ch, ()):
                n = entry.count(text)
                if n:
                    found.append((entry, n))
        return found

    def evidence(self, text: str) -> Dict[str, float]:
        """Sum the marker weight per dialect label (counts saturate: 1 + log n)."""
        totals: Dict[str, float] = {}
        for entry, n in self.matches(text):
            scale = 1.0 + math.log(n)
            for label, weight in entry.weights.items():
                totals[label] = totals.get(label, 0.0) + weight * scale
        return totals


def marker_probabilities(evidence: Dict[str, float], mandarin_prior: float = 1.0,
                         sharpness: float = 1.6) -> List[float]:
    """Softmax over labels: mandarin gets a fixed score, each dialect its marker evidence."""
    logits = [mandarin_prior * sharpness]
    for label in DIALECT_LABELS[1:]:
        logits.append(evidence.get(label, 0.0) * sharpness)
    top = max(logits)
    exps = [math.exp(v - top) for v in logits]
    total = sum(exps)
    return [v / total for v in exps]
